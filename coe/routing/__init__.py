"""Automatic routing: which expert answers a request sent to `model="coe"`."""
