// Test certificates made at test time with OpenSSL's C API (no `openssl` binary needed):
// a CA, and leaf certificates it signs for 127.0.0.1 / localhost, usable as server and
// client identities. Never for production: keys are unencrypted, validity is one day.
//
//   TestCert ca = MakeTestCa(dir, "ca");
//   TestCert server = MakeTestLeaf(dir, "server", ca);
//   // server.cert_file, server.key_file, ca.cert_file are PEM files under `dir`.

#ifndef KVCACHE_TESTS_TLS_TEST_CERTS_H_
#define KVCACHE_TESTS_TLS_TEST_CERTS_H_

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>

#include "common/tls_options.h"

namespace kvcache {
namespace testing {

struct TestCert {
  std::string cert_file;
  std::string key_file;
  std::shared_ptr<X509> cert;
  std::shared_ptr<EVP_PKEY> key;
};

namespace tls_internal {

inline void Check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("test certificate: ") + what);
}

inline void AddExt(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  Check(ext != nullptr, "extension");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

inline void WritePem(const std::string& path, X509* cert, EVP_PKEY* key) {
  FILE* f = std::fopen(path.c_str(), "w");
  Check(f != nullptr, "open");
  const bool ok = cert != nullptr
                      ? PEM_write_X509(f, cert) == 1
                      : PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  std::fclose(f);
  Check(ok, "write PEM");
}

// A certificate for `cn` with a fresh P-256 key, signed by `issuer` (self-signed when null).
inline TestCert Make(const std::string& dir, const std::string& name, const std::string& cn,
                     const TestCert* issuer, bool is_ca, long serial) {
  std::shared_ptr<EVP_PKEY> key(EVP_EC_gen("P-256"), EVP_PKEY_free);
  Check(key != nullptr, "key");
  std::shared_ptr<X509> cert(X509_new(), X509_free);
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* subject = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509* issuer_cert = issuer ? issuer->cert.get() : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer_cert));
  if (is_ca) {
    AddExt(cert.get(), issuer_cert, NID_basic_constraints, "critical,CA:TRUE");
    AddExt(cert.get(), issuer_cert, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    AddExt(cert.get(), issuer_cert, NID_basic_constraints, "CA:FALSE");
    AddExt(cert.get(), issuer_cert, NID_key_usage, "critical,digitalSignature,keyEncipherment");
    AddExt(cert.get(), issuer_cert, NID_ext_key_usage, "serverAuth,clientAuth");
    AddExt(cert.get(), issuer_cert, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
  }
  AddExt(cert.get(), issuer_cert, NID_subject_key_identifier, "hash");
  EVP_PKEY* signer = issuer ? issuer->key.get() : key.get();
  Check(X509_sign(cert.get(), signer, EVP_sha256()) > 0, "sign");
  TestCert out;
  out.cert_file = dir + "/" + name + ".crt";
  out.key_file = dir + "/" + name + ".key";
  WritePem(out.cert_file, cert.get(), nullptr);
  WritePem(out.key_file, nullptr, key.get());
  out.cert = cert;
  out.key = key;
  return out;
}

}  // namespace tls_internal

// A self-signed CA named `name` ("<dir>/<name>.crt", ".key").
inline TestCert MakeTestCa(const std::string& dir, const std::string& name) {
  return tls_internal::Make(dir, name, "kvcache test CA " + name, nullptr, true, 1);
}

// A leaf for localhost and 127.0.0.1 (server and client use), signed by `ca`.
inline TestCert MakeTestLeaf(const std::string& dir, const std::string& name, const TestCert& ca,
                             long serial = 2) {
  return tls_internal::Make(dir, name, "kvcache test " + name, &ca, false, serial);
}

// A client's TLS options that trust `ca`, presenting `identity` when given (mutual TLS).
inline TlsClientOptions Trusting(const TestCert& ca, const TestCert* identity = nullptr) {
  TlsClientOptions t;
  t.ca_file = ca.cert_file;
  if (identity) {
    t.cert_file = identity->cert_file;
    t.key_file = identity->key_file;
  }
  return t;
}

}  // namespace testing
}  // namespace kvcache

#endif  // KVCACHE_TESTS_TLS_TEST_CERTS_H_
