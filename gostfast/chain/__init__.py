"""Chains: hops of nodes, node selection, and dialing through them."""
