"""Training code for CoE's two-stage router (category classifier, K-shot expert map).

Empty until the router lands; the package exists so the install layout is final from the start.
"""
