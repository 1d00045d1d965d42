package web

// triggerRoutes are the event triggers' pages.
func (h *Handler) triggerRoutes() []route { return nil }
