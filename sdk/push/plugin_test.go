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
		{"empty matches all", Interest{Subscribers: true}, "", nil, true, true},
		{"observe only takes no subscriber", Interest{Observe: true}, "", nil, true, false},
		{"namespace", Interest{Namespaces: []string{"dev"}, Subscribers: true}, "", nil, false, false},
		{"service pattern", Interest{Services: []string{"order-*"}, Subscribers: true}, "", nil, true, true},
		{"service pattern miss", Interest{Services: []string{"user-*", "pay"}, Subscribers: true}, "", nil, false, false},
		{"app", Interest{Apps: []string{"web"}, Subscribers: true}, "web", nil, true, true},
		{"app miss", Interest{Apps: []string{"web"}, Subscribers: true}, "batch", nil, true, false},
		{"labels", Interest{Labels: map[string]string{"zone": "a"}, Subscribers: true}, "", map[string]string{"zone": "a", "x": "y"}, true, true},
		{"labels miss", Interest{Labels: map[string]string{"zone": "a"}, Subscribers: true}, "", map[string]string{"zone": "b"}, true, false},
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

func TestInterestValidate(t *testing.T) {
	for _, tc := range []struct {
		in Interest
		ok bool
	}{
		{Interest{Subscribers: true}, true},
		{Interest{Observe: true, Services: []string{"a-*"}}, true},
		{Interest{}, false},
		{Interest{Observe: true, Services: []string{"a["}}, false},
	} {
		if err := tc.in.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%+v) = %v", tc.in, err)
		}
	}
}
