package api

// scheduleRoutes are the schedules' routes.
func scheduleRoutes() []Route { return nil }
