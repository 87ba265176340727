// Package helm holds the tests of the deployment artefacts: the Helm chart in charts/hookpost and the kustomize
// tree in config/. They render the manifests with the real helm and kubectl binaries and server-side dry-run apply
// every object to an envtest API server, so a wrong field, kind or reference fails here rather than in a cluster.
package helm
