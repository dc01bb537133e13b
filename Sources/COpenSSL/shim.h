/* COpenSSL: the system OpenSSL (libssl, libcrypto) for Swift.
 * Only macros and variadic functions that Swift cannot import get a wrapper here; each says why. */
#ifndef MAILGATE_COPENSSL_SHIM_H
#define MAILGATE_COPENSSL_SHIM_H

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/pem.h>
#include <openssl/bio.h>
#include <openssl/kdf.h>

#endif
