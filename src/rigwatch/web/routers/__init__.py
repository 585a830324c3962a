"""The station's REST routers, one per area: station state and mode, recordings."""
