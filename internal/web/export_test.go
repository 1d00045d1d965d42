package web

import "strings"

// FormRoutes lists the paths of the state-changing routes behind a
// session ("POST /runs/{id}/approve" → "/runs/{id}/approve").
func FormRoutes() []string {
	var out []string
	for _, rt := range (&Handler{}).routes() {
		if path, ok := strings.CutPrefix(rt.pattern, "POST "); ok && rt.auth {
			out = append(out, path)
		}
	}
	return out
}
