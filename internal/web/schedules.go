package web

// scheduleRoutes are the schedules' pages.
func (h *Handler) scheduleRoutes() []route { return nil }
