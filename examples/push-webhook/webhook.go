package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/sextantd/sextant/sdk/push"
)

// webhook is the executor: it POSTs each batch to a URL.
type webhook struct {
	url      string
	timeout  time.Duration // of one POST
	retries  int
	backoff  time.Duration // before the first retry, doubled for each next one
	interest push.Interest
}

func newWebhook(cfg config) *webhook {
	return &webhook{
		url:     cfg.URL,
		timeout: time.Duration(cfg.Timeout),
		retries: cfg.Retries,
		backoff: 100 * time.Millisecond,
		interest: push.Interest{
			Namespaces: cfg.Namespaces,
			Groups:     cfg.Groups,
			Services:   cfg.Services,
			Observe:    true, // and no Subscribers: Nacos clients stay with pushrpc
		},
	}
}

// Interest makes the host push the webhook every change of the services it
// watches, each as a batch whose one target is "observer:<its name in the
// configuration>".
func (w *webhook) Interest() push.Interest { return w.interest }

// event is the JSON body of a POST: one change of a service.
type event struct {
	Namespace string `json:"namespace"`
	Group     string `json:"group"`
	Service   string `json:"service"`
	// Clusters is the cluster filter of ServiceInfo ("" for all).
	Clusters string `json:"clusters"`
	// ServiceInfo is the service's instances, as Nacos 2.x clients get them.
	ServiceInfo json.RawMessage `json:"serviceInfo"`
	// Targets are the client ids the batch was for.
	Targets []string `json:"targets"`
}

// Push POSTs b once for all its targets, which all get its outcome.
func (w *webhook) Push(ctx context.Context, b push.Batch) []error {
	errs := make([]error, len(b.Targets))
	if len(b.Targets) == 0 {
		return errs
	}
	if err := w.deliver(ctx, b); err != nil {
		for i := range errs {
			errs[i] = err
		}
	}
	return errs
}

// deliver POSTs b's event, retrying with backoff until it is accepted, the
// retries are spent or ctx ends.
func (w *webhook) deliver(ctx context.Context, b push.Batch) error {
	e := event{
		Namespace:   b.Service.Namespace,
		Group:       b.Service.Group,
		Service:     b.Service.Name,
		Clusters:    b.Clusters,
		ServiceInfo: b.ServiceInfo,
		Targets:     make([]string, len(b.Targets)),
	}
	for i, t := range b.Targets {
		e.Targets[i] = t.ClientID
	}
	body, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encoding the event: %w", err)
	}
	backoff := w.backoff
	for retry := 0; ; retry++ {
		err := w.post(ctx, body)
		if err == nil || retry == w.retries {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
			backoff *= 2
		}
	}
}

// post makes one POST of body, within the timeout.
func (w *webhook) post(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", Plugin.Name+"/"+Plugin.Version)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so that the connection is reused
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("POST %s: %s", w.url, resp.Status)
	}
	return nil
}
