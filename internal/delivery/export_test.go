package delivery

import "net/url"

// HostUsers reports how many attempts hold or wait for rawURL's host slots, so
// tests can tell that an attempt is queued before they go on.
func (s *Sender) HostUsers(rawURL string) int {
	u, err := url.Parse(rawURL)
	if err != nil {
		return -1
	}
	return s.hosts.users(hostKey(u))
}

// RateBuckets reports how many subscriptions' rate buckets the Sender keeps.
func (s *Sender) RateBuckets() int {
	return s.rates.size()
}
