"""The hot/warm/cold model-swap manager.

hot  = weights inside a running vLLM engine (an engine slot),
warm = an engine-layout image of the weights in host RAM (tmpfs), read by the engine process,
cold = the same image on disk (streamed straight into the engine's parameters).

A slot serves any expert of its architecture; swapping copies an image into the engine's own
parameters in place, so no engine is rebooted.
"""
