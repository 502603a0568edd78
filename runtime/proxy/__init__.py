"""wr-proxy: the node data plane (routing, load balancing, streaming) and control plane."""
