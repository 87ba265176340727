package harness

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
)

// DocCheck is one request as a receiver built from product documents 000 and 002 checks it: the body, the value
// of the header each document reads (doc 000 X-Webhook-Signature, doc 002 X-urBackend-Signature, or whichever
// header the receiver was pointed at) and the WEBHOOK_SECRET the receiver is configured with.
type DocCheck struct {
	Body         string `json:"body"`
	Signature000 string `json:"signature000"`
	Signature002 string `json:"signature002"`
	Secret       string `json:"secret"`
}

// productDocVerifiers is the documents' verifier code, run after express.json() (JSON.parse of the body).
const productDocVerifiers = `
const crypto = require('crypto');
const checks = JSON.parse(require('fs').readFileSync(0, 'utf8'));
function verifyWebhookSignature(payload, signature, secret) { // product doc 000
  const expectedSignature = crypto.createHmac('sha256', secret).update(JSON.stringify(payload)).digest('hex');
  return signature.length === expectedSignature.length &&
    crypto.timingSafeEqual(Buffer.from(signature), Buffer.from(expectedSignature));
}
function urBackendVerify(body, signature, WEBHOOK_SECRET) { // product doc 002
  const payload = JSON.stringify(body);
  const expectedSignature = crypto.createHmac('sha256', WEBHOOK_SECRET).update(payload).digest('hex');
  return !!signature && signature === expectedSignature;
}
process.stdout.write(JSON.stringify(checks.map(c => {
  const body = JSON.parse(c.body);
  return [verifyWebhookSignature(body, c.signature000, c.secret), urBackendVerify(body, c.signature002, c.secret)];
})));
`

// ProductDocVerdicts runs the verifiers of product documents 000 and 002 in one node process over checks and
// returns, for each check, whether doc 000's and doc 002's verifier accept it.
func ProductDocVerdicts(checks []DocCheck) ([][2]bool, error) {
	stdin, err := json.Marshal(checks)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("node", "-e", productDocVerifiers)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("running node: %w: %s", err, stderr.String())
	}
	var verdicts [][2]bool
	if err := json.Unmarshal(out, &verdicts); err != nil {
		return nil, fmt.Errorf("decoding node output %q: %w", out, err)
	}
	if len(verdicts) != len(checks) {
		return nil, fmt.Errorf("node returned %d verdicts for %d checks", len(verdicts), len(checks))
	}
	return verdicts, nil
}
