package delivery

import (
	"net/url"
	"time"
)

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

// SetNow replaces the clock the Sender drops unused clients by.
func (s *Sender) SetNow(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// PooledClients reports how many clients of their own (per reach and TLS material) the Sender keeps.
func (s *Sender) PooledClients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.clients)
}
