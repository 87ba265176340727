package controller

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hookpostv1 "github.com/hookpost/hookpost/api/v1alpha1"
	"github.com/hookpost/hookpost/internal/delivery"
)

// CABundleSelector selects the ConfigMaps the operator may read as CA bundles.
var CABundleSelector = labels.SelectorFromSet(labels.Set{hookpostv1.LabelCABundle: "true"})

// TLSMaterial is what a subscription's spec.tls names, read: the bytes an attempt connects with, or why they
// cannot be used.
type TLSMaterial struct {
	TLS delivery.ClientTLS
	// Reason (a Ready reason) and Message, naming the field and the fix, say why spec.tls cannot be used; empty
	// when it can.
	Reason, Message string
}

// ReadTLS reads the Secrets and ConfigMap spec (a subscription's spec.tls; nil for none) names in namespace. Both
// attempt paths call it for each attempt, as they read the signing secret, so a rotated Secret is used from the
// next attempt on: Secrets come from Get (cached metadata, data read once per resourceVersion), ConfigMaps from the
// manager's cache, which holds only those labelled LabelCABundle=true. It checks that the data is there, not that
// it parses; Check does, for the subscription controller, and the Sender parses once per distinct material.
func (s *Secrets) ReadTLS(ctx context.Context, namespace string, spec *hookpostv1.SubscriptionTLS) (TLSMaterial, error) {
	var m TLSMaterial
	if spec == nil {
		return m, nil
	}
	if ref := spec.ClientCertificateRef; ref != nil {
		const field = "spec.tls.clientCertificateRef"
		data, problem, err := s.tlsSecretData(ctx, namespace, ref.Name, field)
		if err != nil || problem != nil {
			return orProblem(m, problem), err
		}
		m.TLS.CertPEM, m.TLS.KeyPEM = data[corev1.TLSCertKey], data[corev1.TLSPrivateKeyKey]
		if len(m.TLS.CertPEM) == 0 || len(m.TLS.KeyPEM) == 0 {
			return TLSMaterial{Reason: hookpostv1.ReasonTLSInvalid, Message: fmt.Sprintf(
				"Secret %q named in %s has no data under %s and %s; make it a kubernetes.io/tls Secret holding the client certificate and its key (kubectl create secret tls)",
				ref.Name, field, corev1.TLSCertKey, corev1.TLSPrivateKeyKey)}, nil
		}
	}
	if ref := spec.CABundleRef; ref != nil {
		key := caBundleKey(ref)
		kind, name, field := "ConfigMap", ref.ConfigMapName, "spec.tls.caBundleRef.configMapName"
		var (
			data    map[string][]byte
			problem *TLSMaterial
			err     error
		)
		if ref.SecretName != "" {
			kind, name, field = "Secret", ref.SecretName, "spec.tls.caBundleRef.secretName"
			data, problem, err = s.tlsSecretData(ctx, namespace, name, field)
		} else {
			data, problem, err = s.caConfigMapData(ctx, namespace, name, key)
		}
		if err != nil || problem != nil {
			return orProblem(m, problem), err
		}
		if m.TLS.CAPEM = data[key]; len(m.TLS.CAPEM) == 0 {
			return TLSMaterial{Reason: hookpostv1.ReasonTLSInvalid, Message: fmt.Sprintf(
				"%s %q named in %s has no data under key %q; put the PEM CA certificates there, or set spec.tls.caBundleRef.key to the key that holds them",
				kind, name, field, key)}, nil
		}
	}
	return m, nil
}

// Check reports, as a Ready reason and message, material that is there but cannot be used: PEM that does not
// parse, a key that does not match its certificate. The subscription controller calls it, so Ready says so before
// an attempt fails on it.
func (m TLSMaterial) Check(spec *hookpostv1.SubscriptionTLS) TLSMaterial {
	if m.Reason != "" || spec == nil {
		return m
	}
	if ref := spec.ClientCertificateRef; ref != nil {
		if _, err := delivery.ParseClientCertificate(m.TLS.CertPEM, m.TLS.KeyPEM); err != nil {
			return TLSMaterial{Reason: hookpostv1.ReasonTLSInvalid, Message: fmt.Sprintf(
				"Secret %q named in spec.tls.clientCertificateRef: tls.crt and tls.key are not a PEM certificate and its private key (%v); replace them",
				ref.Name, err)}
		}
	}
	if ref := spec.CABundleRef; ref != nil {
		if _, err := delivery.ParseCABundle(m.TLS.CAPEM); err != nil {
			return TLSMaterial{Reason: hookpostv1.ReasonTLSInvalid, Message: fmt.Sprintf(
				"spec.tls.caBundleRef: %v; the key must hold PEM certificates (-----BEGIN CERTIFICATE-----)", err)}
		}
	}
	return m
}

// caBundleKey is the data key ref reads: its key, or the default when unset, as in an object not (yet) read from
// the API server, which fills the default in.
func caBundleKey(ref *hookpostv1.CABundleRef) string {
	if ref.Key == "" {
		return hookpostv1.DefaultCABundleKey
	}
	return ref.Key
}

func orProblem(m TLSMaterial, problem *TLSMaterial) TLSMaterial {
	if problem != nil {
		return *problem
	}
	return m
}

// tlsSecretData reads a Secret spec.tls names at field; problem says why it cannot be used when it is missing
// or unlabelled.
func (s *Secrets) tlsSecretData(ctx context.Context, namespace, name, field string) (map[string][]byte, *TLSMaterial, error) {
	key := types.NamespacedName{Namespace: namespace, Name: name}
	sec, err := s.Get(ctx, key)
	if apierrors.IsNotFound(err) {
		problem, err := s.missing(ctx, key, "Secret", SigningSecretSelector, hookpostv1.LabelSigningSecret, field, "")
		return nil, problem, err
	}
	if err != nil {
		return nil, nil, fmt.Errorf("get Secret %s: %w", name, err)
	}
	return sec.Data, nil, nil
}

// caConfigMapData reads the CA bundle ConfigMap spec.tls.caBundleRef.configMapName names, from data (key) or
// else binaryData.
func (s *Secrets) caConfigMapData(ctx context.Context, namespace, name, key string) (map[string][]byte, *TLSMaterial, error) {
	nn := types.NamespacedName{Namespace: namespace, Name: name}
	cm := &corev1.ConfigMap{}
	// Read, never modified: no copy of the cached object on every attempt.
	err := s.Metadata.Get(ctx, nn, cm, client.UnsafeDisableDeepCopy)
	if apierrors.IsNotFound(err) {
		problem, err := s.missing(ctx, nn, "ConfigMap", CABundleSelector, hookpostv1.LabelCABundle, "spec.tls.caBundleRef.configMapName",
			fmt.Sprintf(", holding the PEM CA certificates under key %q", key))
		return nil, problem, err
	}
	if err != nil {
		return nil, nil, fmt.Errorf("get ConfigMap %s: %w", name, err)
	}
	if v, ok := cm.Data[key]; ok {
		return map[string][]byte{key: []byte(v)}, nil, nil
	}
	return cm.BinaryData, nil, nil
}

// missing says why the object of kind at nn, named in field and absent from the cache, cannot be used: it lacks
// label (selected by selector), or it does not exist. As for signing Secrets (resolveSecret), an unlabelled object
// is not read: the message says how to label it, and the label brings it into the watch.
func (s *Secrets) missing(ctx context.Context, nn types.NamespacedName, kind string, selector labels.Selector, label, field, holding string) (*TLSMaterial, error) {
	unlabeled, err := s.unlabeled(ctx, nn, kind, selector)
	if err != nil {
		return nil, fmt.Errorf("get %s %s metadata: %w", kind, nn.Name, err)
	}
	if unlabeled {
		return &TLSMaterial{Reason: hookpostv1.ReasonTLSNotLabeled, Message: fmt.Sprintf(
			"%s %q named in %s lacks the label %s=true, and Hookpost reads only %ss that carry it; label it: kubectl label %s %s -n %s %s=true",
			kind, nn.Name, field, label, kind, strings.ToLower(kind), nn.Name, nn.Namespace, label)}, nil
	}
	return &TLSMaterial{Reason: hookpostv1.ReasonTLSNotFound, Message: fmt.Sprintf(
		"%s %q named in %s does not exist in namespace %s; create it with the label %s=true%s",
		kind, nn.Name, field, nn.Namespace, label, holding)}, nil
}
