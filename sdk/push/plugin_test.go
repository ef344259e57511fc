package push

import "testing"

func TestInterestMatching(t *testing.T) {
	orders := Service{Namespace: "prod", Group: "shop", Name: "order-api"}
	tests := []struct {
		name     string
		in       Interest
		app      string
		labels   map[string]string
		service  bool
		subscrib bool
	}{
		{"empty matches all", Interest{}, "", nil, true, true},
		{"namespace", Interest{Namespaces: []string{"dev"}}, "", nil, false, false},
		{"service pattern", Interest{Services: []string{"order-*"}}, "", nil, true, true},
		{"service pattern miss", Interest{Services: []string{"user-*", "pay"}}, "", nil, false, false},
		{"app", Interest{Apps: []string{"web"}}, "web", nil, true, true},
		{"app miss", Interest{Apps: []string{"web"}}, "batch", nil, true, false},
		{"labels", Interest{Labels: map[string]string{"zone": "a"}}, "", map[string]string{"zone": "a", "x": "y"}, true, true},
		{"labels miss", Interest{Labels: map[string]string{"zone": "a"}}, "", map[string]string{"zone": "b"}, true, false},
	}
	for _, tc := range tests {
		if got := tc.in.MatchesService(orders); got != tc.service {
			t.Errorf("%s: MatchesService = %v", tc.name, got)
		}
		if got := tc.in.MatchesSubscriber(orders, tc.app, tc.labels); got != tc.subscrib {
			t.Errorf("%s: MatchesSubscriber = %v", tc.name, got)
		}
	}
}
