package v1alpha1

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

// DeliveryName is the name of the WebhookDelivery for an event and a subscription. It is derived from both, so a
// source that hands Hookpost the same event twice gets AlreadyExists instead of a second delivery.
func DeliveryName(subscription, eventID string) string {
	sum := sha256.Sum256([]byte(subscription + "\x00" + eventID))
	suffix := hex.EncodeToString(sum[:10])
	// Names are DNS subdomains of at most 253 characters; keep the subscription's name readable as a prefix.
	prefix := subscription
	if max := 253 - len(suffix) - 1; len(prefix) > max {
		prefix = strings.TrimRight(prefix[:max], ".-")
	}
	return prefix + "-" + suffix
}

// GeneratedSecretName is the Secret Hookpost creates for a subscription without spec.signing.secretRef.
func GeneratedSecretName(subscription string) string {
	const suffix = "-signing-secret"
	if len(subscription)+len(suffix) > 253 {
		subscription = strings.TrimRight(subscription[:253-len(suffix)], ".-")
	}
	return subscription + suffix
}

// DefaultSecretKey is the Secret data key read when secretRef.key is unset.
const DefaultSecretKey = "secret"

// EventTypeLabelValue returns the event type as a label value, or "" when it cannot be one (label values are at
// most 63 characters of [A-Za-z0-9._-], starting and ending alphanumeric).
func EventTypeLabelValue(eventType string) string {
	if len(eventType) == 0 || len(eventType) > 63 {
		return ""
	}
	for i, c := range eventType {
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if alnum {
			continue
		}
		if (c == '.' || c == '-' || c == '_') && i != 0 && i != len(eventType)-1 {
			continue
		}
		return ""
	}
	return eventType
}

// SubscriptionLabelValue returns a subscription's name as a label value, or "" when it is too long to be one
// (names may have 253 characters, label values 63); the spec.subscriptionName field selector finds those.
func SubscriptionLabelValue(name string) string {
	if len(name) > 63 {
		return ""
	}
	return name
}

// ReplayValue is the AnnotationReplay value the WebhookReplay name (with uid) sets on a delivery it replays that
// had made attempts attempts: the count tells the replay's own outcome from the one before it.
func ReplayValue(name, uid string, attempts int32) string {
	return ReplayValuePrefix + name + "/" + uid + "/" + strconv.Itoa(int(attempts))
}

// ParseReplayValue returns the WebhookReplay's name and uid, and the delivery's attempts before it, from an
// AnnotationReplay value ReplayValue made, or ok false for any other value.
func ParseReplayValue(v string) (name, uid string, attempts int32, ok bool) {
	rest, found := strings.CutPrefix(v, ReplayValuePrefix)
	if !found {
		return "", "", 0, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return "", "", 0, false
	}
	n, err := strconv.ParseInt(parts[2], 10, 32)
	if err != nil || n < 0 {
		return "", "", 0, false
	}
	return parts[0], parts[1], int32(n), true
}

// DefaultCABundleKey is the data key read when spec.tls.caBundleRef.key is unset.
const DefaultCABundleKey = "ca.crt"

// OrderingKeyHash names an ordering key of a subscription in a label value (LabelOrderingKey) and in the delivery
// controller's index: 40 hex digits of the SHA-256 of both, since a key may be longer than a label value allows.
func OrderingKeyHash(subscription, key string) string {
	sum := sha256.Sum256([]byte(subscription + "\x00" + key))
	return hex.EncodeToString(sum[:20])
}
