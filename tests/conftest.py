"""Settings for every test, however pytest is started (`make test` exports them too): nothing in the
suite may reach the internet, and LiteLLM fetches its price map at import unless told not to."""

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
