package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// The paths the CLI calls.
const (
	apiPrefix     = "/v1/sextant"
	loginPath     = "/nacos/v1/auth/login"
	instancePath  = "/nacos/v2/ns/instance"
	tokenHeader   = "accessToken"
	pageSize      = 1000     // the read API's largest page
	maxAnswer     = 64 << 20 // bytes read of one answer
	maxErrorShown = 512      // bytes of an error's text shown
)

// unreachableError is a request that got no answer: exit code 3.
type unreachableError struct{ err error }

func (e *unreachableError) Error() string {
	return "cannot reach the server: " + e.err.Error()
}

// serverError is an answer that is a refusal: exit code 1.
type serverError struct {
	status int
	msg    string
}

func (e *serverError) Error() string { return e.msg }

// client calls one server's HTTP port.
type client struct {
	base  *url.URL
	http  *http.Client
	token string
}

// newClient returns a client of the server o names, logged in when o has a
// user.
func newClient(o options) (*client, error) {
	base, err := baseURL(o.server)
	if err != nil {
		return nil, err
	}
	c := &client{base: base, http: &http.Client{Timeout: o.timeout}, token: o.token}
	if o.username != "" {
		if c.token, err = c.login(o.username, o.password); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// login returns a token for the user (empty when the server has auth off).
func (c *client) login(username, password string) (string, error) {
	body, err := c.send(http.MethodPost, loginPath, url.Values{"username": {username}, "password": {password}})
	if err != nil {
		var refused *serverError
		if errors.As(err, &refused) {
			return "", fmt.Errorf("login as %q refused: %w", username, err)
		}
		return "", err
	}
	var answer struct {
		AccessToken string `json:"accessToken"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		return "", fmt.Errorf("login: the server's answer is not a login's: %w", err)
	}
	return answer.AccessToken, nil
}

// send makes a request — GET and DELETE with params in the query, POST in
// a form — and returns the body of a 200 answer. Any other status is a
// serverError with the server's message.
func (c *client) send(method, path string, params url.Values) ([]byte, error) {
	u := *c.base
	u.Path += path
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader(params.Encode())
	} else {
		u.RawQuery = params.Encode()
	}
	req, err := http.NewRequest(method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.token != "" {
		req.Header.Set(tokenHeader, c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is the server's, which the user knows
		}
		return nil, &unreachableError{fmt.Errorf("%s %s: %w", method, u.Host, err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	switch {
	case err != nil:
		return nil, &unreachableError{fmt.Errorf("reading the answer to %s %s: %w", method, path, err)}
	case len(data) > maxAnswer:
		return nil, &serverError{status: resp.StatusCode, msg: fmt.Sprintf("%s %s: the answer is larger than %d bytes", method, path, maxAnswer)}
	case resp.StatusCode != http.StatusOK:
		return nil, refusal(resp.StatusCode, method, path, data)
	}
	return data, nil
}

// refusal describes a refused request: the message of Nacos's envelope
// (whose data names the bad parameter) or the text the server wrote.
func refusal(status int, method, path string, body []byte) error {
	var env struct {
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &env) == nil && env.Message != "" {
		msg = env.Message
		var detail string
		if json.Unmarshal(env.Data, &detail) == nil && detail != "" {
			msg = detail
		}
	}
	if len(msg) > maxErrorShown {
		msg = msg[:maxErrorShown] + "..."
	}
	switch {
	case status == http.StatusForbidden:
		msg += " (the server has auth on: give a global admin's --token or SEXTANT_TOKEN, or --username and --password)"
	case status == http.StatusNotFound && strings.HasPrefix(path, apiPrefix) && strings.HasPrefix(msg, "404 page not found"):
		msg = "the server does not serve " + path + ": is it a Sextant server of this version?"
	}
	return &serverError{status: status, msg: fmt.Sprintf("%s (HTTP %d)", msg, status)}
}

// v2 calls an endpoint that answers in Nacos's v2 envelope and decodes its
// data into v.
func (c *client) v2(method, path string, params url.Values, v any) error {
	body, err := c.send(method, path, params)
	if err != nil {
		return err
	}
	var env struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return &serverError{status: http.StatusOK, msg: fmt.Sprintf("%s %s: the answer is not JSON: %v", method, path, err)}
	}
	if env.Code != 0 {
		return refusal(http.StatusOK, method, path, body)
	}
	if v == nil {
		return nil
	}
	if err := json.Unmarshal(env.Data, v); err != nil {
		return &serverError{status: http.StatusOK, msg: fmt.Sprintf("%s %s: unexpected answer: %v", method, path, err)}
	}
	return nil
}

// list reads every page of a read API list and returns its items as the
// server wrote them.
func (c *client) list(path string, params url.Values) ([]json.RawMessage, error) {
	all := []json.RawMessage{}
	for no := 1; ; no++ {
		q := url.Values{"pageNo": {strconv.Itoa(no)}, "pageSize": {strconv.Itoa(pageSize)}}
		for k, v := range params {
			q[k] = v
		}
		var p struct {
			Count int               `json:"count"`
			Items []json.RawMessage `json:"items"`
		}
		if err := c.v2(http.MethodGet, apiPrefix+path, q, &p); err != nil {
			return nil, err
		}
		all = append(all, p.Items...)
		if len(p.Items) == 0 || len(all) >= p.Count {
			return all, nil
		}
	}
}

// decodeItems decodes each item into a T.
func decodeItems[T any](items []json.RawMessage) ([]T, error) {
	out := make([]T, len(items))
	for i, item := range items {
		if err := json.Unmarshal(item, &out[i]); err != nil {
			return nil, &serverError{status: http.StatusOK, msg: fmt.Sprintf("unexpected item %.200s: %v", item, err)}
		}
	}
	return out, nil
}
