"""UDP datagrams carried by gostfast: to targets directly, or through a chain's stream."""
