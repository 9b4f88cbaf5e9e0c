"""Sans-IO handshake codecs shared by handlers (server side) and connectors (client side)."""
