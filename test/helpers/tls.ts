// Certificate fixtures in test/fixtures/tls, made once with openssl (100-year validity):
//   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key.pem -out cert.pem \
//     -days 36500 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1
//   openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out other-key.pem
//   openssl pkcs8 -topk8 -in key.pem -v2 aes-256-cbc -passout pass:fixture-pass -out encrypted-key.pem
import { join } from 'node:path';

const DIR = join(__dirname, '..', '..', '..', 'test', 'fixtures', 'tls');

export const TLS = {
  /** Self-signed for localhost and 127.0.0.1. */
  cert: join(DIR, 'cert.pem'),
  /** The certificate's key, unencrypted. */
  key: join(DIR, 'key.pem'),
  /** The same key, encrypted with `pass`. */
  encryptedKey: join(DIR, 'encrypted-key.pem'),
  pass: 'fixture-pass',
  /** A key that does not match the certificate. */
  otherKey: join(DIR, 'other-key.pem'),
};
