"""smux session engine: streams as endpoints over one byte stream."""
