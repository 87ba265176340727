package controller

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

var _ = Describe("Secrets", func() {
	It("reads a Secret's data once per change and follows updates and deletion", func() {
		ctx := context.Background()
		ns := newNamespace()
		key := types.NamespacedName{Namespace: ns, Name: "s"}
		Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "s"}, StringData: map[string]string{"secret": "one"}})).To(Succeed())

		var first *corev1.Secret
		Eventually(func() error {
			var err error
			first, err = testSecrets.Get(ctx, key)
			return err
		}).Should(Succeed())
		Expect(string(first.Data["secret"])).To(Equal("one"))
		again, err := testSecrets.Get(ctx, key)
		Expect(err).NotTo(HaveOccurred())
		Expect(again).To(BeIdenticalTo(first), "an unchanged Secret is not read from the API server again")

		updated := first.DeepCopy()
		updated.Data = map[string][]byte{"secret": []byte("two")}
		Expect(k8sClient.Update(ctx, updated)).To(Succeed())
		Eventually(func() string {
			s, err := testSecrets.Get(ctx, key)
			Expect(err).NotTo(HaveOccurred())
			return string(s.Data["secret"])
		}).Should(Equal("two"))

		Expect(k8sClient.Delete(ctx, updated)).To(Succeed())
		Eventually(func() bool {
			_, err := testSecrets.Get(ctx, key)
			return apierrors.IsNotFound(err)
		}).Should(BeTrue())
	})
})
