"""The `coe` command line."""
