package api

// triggerRoutes are the event triggers' routes.
func triggerRoutes() []Route { return nil }
