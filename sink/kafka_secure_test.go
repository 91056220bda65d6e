package sink

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// writeTestPKI makes a CA and a server certificate for 127.0.0.1, and
// writes ca.pem and server.pem (PKCS#8 key + chain, Kafka's PEM keystore).
func writeTestPKI(t *testing.T, dir string) (caFile, keystore string) {
	t.Helper()
	caKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lookout test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caTmpl, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(dir, "ca.pem")
	keystore = filepath.Join(dir, "server.pem")
	ks := append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER})...)
	ks = append(ks, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keystore, ks, 0o600); err != nil {
		t.Fatal(err)
	}
	return caFile, keystore
}

// TestKafkaSinkTLSAndSASL runs a broker with a SASL_SSL listener (SCRAM-SHA-512,
// SCRAM-SHA-256 and PLAIN over TLS, certificates made here) and writes
// through it with each mechanism; a wrong password or an untrusted
// certificate fails without printing the password.
func TestKafkaSinkTLSAndSASL(t *testing.T) {
	const port = 19792 // PLAINTEXT; controller 19793; SASL_SSL 19794 (apart from other tests' brokers)
	const user, password = "lookout", "Tr0ub4dor-and-3"
	script := func(env []string, args ...string) (string, error) {
		cmd := exec.Command("../scripts/kafka.sh", append(args, "--port", fmt.Sprint(port))...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	dir := t.TempDir()
	caFile, keystore := writeTestPKI(t, dir)
	props := fmt.Sprintf(`listeners=PLAINTEXT://127.0.0.1:%[1]d,CONTROLLER://127.0.0.1:%[2]d,SASL_SSL://127.0.0.1:%[3]d
advertised.listeners=PLAINTEXT://127.0.0.1:%[1]d,SASL_SSL://127.0.0.1:%[3]d
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_%[4]s="%[5]s";
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=%[6]s
`, port, port+1, port+2, user, password, keystore)
	propsFile := filepath.Join(dir, "secure.properties")
	if err := os.WriteFile(propsFile, []byte(props), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"KAFKA_EXTRA_CONFIG=" + propsFile,
		fmt.Sprintf("KAFKA_FORMAT_ARGS=--add-scram 'SCRAM-SHA-512=[name=%[1]s,password=%[2]s]' --add-scram 'SCRAM-SHA-256=[name=%[1]s,password=%[2]s]'", user, password)}
	// A fresh data dir, so that the SCRAM users are formatted in.
	if out, err := script(nil, "wipe"); err != nil {
		t.Fatalf("wipe the secure test broker: %v\n%s", err, out)
	}
	if out, err := script(env, "start"); err != nil {
		t.Fatalf("scripts/kafka.sh start --port %d with a SASL_SSL listener failed: %v\n%s", port, err, out)
	}
	t.Cleanup(func() { _, _ = script(nil, "wipe") })
	plainAddr := fmt.Sprintf("127.0.0.1:%d", port)
	secureAddr := fmt.Sprintf("127.0.0.1:%d", port+2)
	topic := createTopic(t, plainAddr, "sink-secure", 1)

	var logBuf strings.Builder
	write := func(mech, pw string, tlsCfg TLSConfig, src string) error {
		k, err := NewKafkaSink(KafkaConfig{Brokers: []string{secureAddr}, Topic: topic, TLS: tlsCfg,
			SASL: SASLConfig{Mechanism: mech, Username: user, Password: pw}, MaxAttempts: 1, WriteTimeout: 5 * time.Second,
			Logger: zerolog.New(&logBuf)})
		if err != nil {
			return err
		}
		defer k.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return k.Write(ctx, testRecords(src, 0, 2))
	}
	trusted := TLSConfig{Enabled: true, CAFile: caFile}
	for _, mech := range []string{"scram-sha-512", "SCRAM-SHA-256", "plain"} {
		if err := write(mech, password, trusted, "cam-"+strings.ToLower(mech)); err != nil {
			t.Fatalf("%s over TLS: %v", mech, err)
		}
	}
	if err := write("scram-sha-512", password, TLSConfig{Enabled: true, InsecureSkipVerify: true}, "cam-insecure"); err != nil {
		t.Fatalf("insecure_skip_verify: %v", err)
	}
	msgs := readAll(t, plainAddr, topic, 8, 10*time.Second)
	if len(msgs) != 8 {
		t.Fatalf("read back %d of 8 records written over SASL_SSL", len(msgs))
	}
	wrongPW := write("scram-sha-512", "not-the-password", trusted, "cam-x")
	if wrongPW == nil {
		t.Fatal("a wrong SCRAM password was accepted")
	}
	untrusted := write("scram-sha-512", password, TLSConfig{Enabled: true}, "cam-y")
	if untrusted == nil {
		t.Fatal("a certificate from an unknown CA was accepted")
	}
	for _, out := range []string{wrongPW.Error(), untrusted.Error(), logBuf.String()} {
		if strings.Contains(out, password) || strings.Contains(out, "not-the-password") {
			t.Fatalf("a password was printed: %s", out)
		}
	}
	t.Logf("wrong password: %v", wrongPW)
	t.Logf("untrusted certificate: %v", untrusted)
}
