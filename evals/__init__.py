"""Evaluation harness (MT-Bench, Arena-Hard) for CoE arrangements.

Empty until the eval harness lands; the package exists so the install layout is final from the start.
"""
