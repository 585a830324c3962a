"""Device drivers and the capability protocols they implement."""
