// Package controller holds Hookpost's reconcilers, one per kind: they read a custom resource, call the
// Kubernetes-free domain packages (delivery, signing, envelope, backoff) and write status. The *_status.go files
// hold the pure functions that compute status from inputs, so they are table-tested without an API server.
package controller
