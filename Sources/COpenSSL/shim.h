/* COpenSSL: the system OpenSSL (libssl, libcrypto) for Swift.
 * Only macros that Swift cannot import get a wrapper here; each says why. Everything else is used directly. */
#ifndef MAILGATE_COPENSSL_SHIM_H
#define MAILGATE_COPENSSL_SHIM_H

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/x509_vfy.h>
#include <openssl/pem.h>
#include <openssl/bio.h>
#include <openssl/kdf.h>
#include <openssl/ts.h>

/* SSL_CTX_set_min_proto_version is a macro over SSL_CTX_ctrl (ssl.h), so Swift does not see it.
 * Used to refuse anything older than TLS 1.2 on both sides. Returns 1 on success. */
static inline int mailgate_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version(ctx, version);
}

/* SSL_CTX_set_max_proto_version is a macro over SSL_CTX_ctrl (ssl.h).
 * Used only by tests that build a deliberately outdated peer. Returns 1 on success. */
static inline int mailgate_SSL_CTX_set_max_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_max_proto_version(ctx, version);
}

/* SSL_set_tlsext_host_name is a macro over SSL_ctrl (tls1.h) that casts away const.
 * Sets the SNI name a client sends. Returns 1 on success. */
static inline int mailgate_SSL_set_tlsext_host_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

/* SSL_CTX_set_mode / SSL_CTX_get_mode are macros over SSL_CTX_ctrl (ssl.h).
 * Used for SSL_MODE_RELEASE_BUFFERS: an idle session keeps no 16 KiB record buffers. Returns the mode now set. */
static inline long mailgate_SSL_CTX_set_mode(SSL_CTX *ctx, long mode) {
    return (long)SSL_CTX_set_mode(ctx, mode);
}
static inline long mailgate_SSL_CTX_get_mode(SSL_CTX *ctx) {
    return (long)SSL_CTX_get_mode(ctx);
}

/* BIO_get_mem_ptr is a macro over BIO_ctrl (bio.h). Used to read how much a memory BIO has allocated (its BUF_MEM's
 * max) so that a drained one that grew can be replaced by a fresh, empty one. Returns 0 when unknown. */
static inline size_t mailgate_BIO_mem_allocated(BIO *bio) {
    BUF_MEM *memory = NULL;
    if (BIO_get_mem_ptr(bio, &memory) <= 0 || memory == NULL) return 0;
    return memory->max;
}

#endif
