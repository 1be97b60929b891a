package cloudsim

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
)

// resource is one kind of record of the simulated cloud (network, subnet,
// security group, port, trunk, server) as the shared handlers see it. Each
// kind's JSON, filters, order and 404 are its own; storing, reading,
// listing and deleting records are written once, here.
type resource[T any] struct {
	// one and many are the JSON keys of one record and of a list ("port",
	// "ports").
	one, many string
	// records is where the records are kept. Callers hold c.st.mu.
	records func(st *store) map[string]*T
	// order gives the IDs in the order lists show them; nil: by ID.
	order func(st *store) []string
	// notFound is the answer about an ID that names no record.
	notFound func(id string) *apiError
	// render shows a record as the API does. Callers hold c.st.mu.
	render func(c *Cloud, v *T) map[string]any
	// matches applies a list request's query filters.
	matches func(q url.Values, v *T) bool
}

// handlerFunc is a handler that returns its error, for neutronHandler or
// novaHandler to answer in its service's dialect.
type handlerFunc func(w http.ResponseWriter, r *http.Request) *apiError

// find returns record id. Callers hold st.mu.
func (rs *resource[T]) find(st *store, id string) (*T, *apiError) {
	v, ok := rs.records(st)[id]
	if !ok {
		return nil, rs.notFound(id)
	}
	return v, nil
}

// with runs f on the record that r's path names ({id}), holding c.st.mu;
// a missing record is the resource's 404.
func (rs *resource[T]) with(c *Cloud, r *http.Request, f func(v *T) *apiError) *apiError {
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	v, e := rs.find(c.st, r.PathValue("id"))
	if e != nil {
		return e
	}
	return f(v)
}

// created stores v, a new record with ID id, and answers 201
// {"<one>": {...}}.
func (rs *resource[T]) created(c *Cloud, w http.ResponseWriter, id string, v *T) {
	c.st.mu.Lock()
	rs.records(c.st)[id] = v
	out := rs.render(c, v)
	c.st.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{rs.one: out})
}

// get answers GET .../{id}: 200 {"<one>": {...}}, or the record's 404.
func (rs *resource[T]) get(c *Cloud) handlerFunc {
	return rs.show(c, rs.one, func(v *T) any { return rs.render(c, v) })
}

// show answers GET .../{id}[/...] with 200 {key: view(record)}: the record
// or a part of it (a port's tags, a trunk's subports).
func (rs *resource[T]) show(c *Cloud, key string, view func(v *T) any) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) *apiError {
		return rs.with(c, r, func(v *T) *apiError {
			writeJSON(w, http.StatusOK, map[string]any{key: view(v)})
			return nil
		})
	}
}

// remove answers DELETE .../{id}: drop refuses (e.g. 409 in use) or
// removes the record, holding c.st.mu; then 204.
func (rs *resource[T]) remove(c *Cloud, drop func(v *T) *apiError) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) *apiError {
		return rs.with(c, r, func(v *T) *apiError {
			if e := drop(v); e != nil {
				return e
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		})
	}
}

// list answers GET .../<many>: 200 {"<many>": [...]} with the records
// that match the query, in the resource's order.
func (rs *resource[T]) list(c *Cloud) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) *apiError {
		q := r.URL.Query()
		c.st.mu.Lock()
		defer c.st.mu.Unlock()
		records := rs.records(c.st)
		var ids []string
		if rs.order != nil {
			ids = rs.order(c.st)
		} else {
			ids = slices.Sorted(maps.Keys(records))
		}
		if m := q.Get("marker"); m != "" {
			// Pages after the record named by marker.
			if i := slices.Index(ids, m); i >= 0 {
				ids = ids[i+1:]
			}
		}
		out := []map[string]any{}
		var last string
		limit, err := strconv.Atoi(q.Get("limit"))
		for _, id := range ids {
			v := records[id]
			if !rs.matches(q, v) {
				continue
			}
			if err == nil && limit > 0 && len(out) == limit {
				break
			}
			out = append(out, onlyFields(rs.render(c, v), q["fields"]))
			last = id
		}
		body := map[string]any{rs.many: out}
		if err == nil && limit > 0 && last != "" {
			// Neutron links the next and previous pages of a limited list
			// (a full last page too: the next one is then empty).
			next, prev := r.URL.Query(), r.URL.Query()
			next.Set("marker", last)
			prev.Set("marker", last)
			prev.Set("page_reverse", "True")
			base := c.baseURL + r.URL.Path + "?"
			links := []map[string]string{{"href": base + next.Encode(), "rel": "next"}}
			body[rs.many+"_links"] = append(links, map[string]string{"href": base + prev.Encode(), "rel": "previous"})
		}
		writeJSON(w, http.StatusOK, body)
		return nil
	}
}

// onlyFields keeps the keys ?fields= names (all without it), as Neutron
// does.
func onlyFields(m map[string]any, fields []string) map[string]any {
	if len(fields) == 0 {
		return m
	}
	out := make(map[string]any, len(fields))
	for _, f := range fields {
		if v, ok := m[f]; ok {
			out[f] = v
		}
	}
	return out
}

// fieldsMatch applies filters that take one value each (?name=x): a
// filter that is given and not empty must equal the record's field.
func fieldsMatch(q url.Values, fields map[string]string) bool {
	for key, have := range fields {
		if want := q.Get(key); want != "" && have != want {
			return false
		}
	}
	return true
}
