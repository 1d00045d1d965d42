package web

import (
	"net/http"
	"net/url"
)

// confirmation is the step before an act that takes something away at
// once (removing a member, disabling a user, removing a node, retiring a
// procedure): a page that says what will happen and posts the same form
// again with confirm=yes. It is a page, not a script's dialog, so it
// works without JavaScript.
type confirmation struct {
	Title  string // "Disable frank?"
	Effect string // what happens, in a sentence
	Button string // "Disable frank"
	Back   string // where Cancel goes
	Action string // the form's action: the request's own path
	Fields url.Values
}

// confirmed reports whether r carries confirm=yes; if not, it answers
// with the confirmation page and the caller stops.
func (h *Handler) confirmed(w http.ResponseWriter, r *http.Request, c confirmation) bool {
	if r.PostFormValue("confirm") == "yes" {
		return true
	}
	c.Action = r.URL.Path
	c.Fields = url.Values{}
	for k, v := range r.PostForm {
		if k != "csrf_token" && k != "confirm" {
			c.Fields[k] = v
		}
	}
	h.render(w, r, http.StatusOK, "confirm", page{Title: c.Title, Data: c})
	return false
}
