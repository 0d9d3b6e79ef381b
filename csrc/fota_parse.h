/*
 * fota_parse.h — parsers for the fields of Huawei FOTA answers and the small
 * tables around them (supported modules, error codes, state names).
 *
 * Every parser takes (line, len) with an explicit length: input is untrusted
 * (it comes from a serial port), need not be NUL-terminated, may hold NUL bytes,
 * and is never read past len. Output buffers are fixed-size fields of the output
 * structs; copies are bounded. Parsers return 0 on success, -1 with err filled
 * ("EPARSE", or "EOVERFLOW" for a field too long to keep) otherwise.
 */
#ifndef HF_FOTA_PARSE_H
#define HF_FOTA_PARSE_H

#include <stddef.h>

#include "hf_error.h"

#define HF_VERSION_TEXT_MAX 40    /* normalised version text, NUL included */
#define HF_VERSION_FIELDS_MAX 8
#define HF_FOTA_DESC_MAX 1536     /* 5 records x 255 + separators, with room to spare */
#define HF_FOTA_NAME_MAX 32       /* ^FOTADLQ file name */
#define HF_FOTA_FILES_MAX 8       /* ^FOTADLQ lines kept per answer */
#define HF_FOTACFG_FIELD_MAX 100  /* APN, user, password (3GPP APN limit is 100) */
#define HF_MODEL_MAX 48
#define HF_IMEI_MAX 24
#define HF_FOTA_SIZE_MAX 4000000000UL   /* largest ^FOTASTATE: 12 size accepted (and journaled) */

/* A parsed firmware version: dot-separated decimal fields. */
typedef struct hf_version {
    char text[HF_VERSION_TEXT_MAX];     /* trimmed, unquoted, as the module wrote it */
    unsigned long field[HF_VERSION_FIELDS_MAX];
    size_t nfields;
} hf_version;

/* Parse and normalise a version: surrounding spaces/tabs and one pair of quotes
 * are dropped; then 2..8 fields of 1..6 decimal digits separated by single dots.
 * Anything else ("", "abc", "1..2", "1.2a", "-1.2") is rejected. */
int hf_version_parse(const char *s, size_t len, hf_version *out, hf_error *err);

/* Field-by-field numeric comparison (a missing field counts as 0, so 1.2 == 1.2.0):
 * -1 when a < b, 0 equal, 1 when a > b. */
int hf_version_compare(const hf_version *a, const hf_version *b);

/* ^FOTASTATE: <state>[,<fields>] (unsolicited or the answer to AT^FOTASTATE?). */
typedef struct hf_fotastate {
    int state;                          /* 10, 11, ... (0..999) */
    int has_version;                    /* state 12 with fields */
    hf_version version;                 /* 12 */
    unsigned long size;                 /* 12: delta size in bytes, <= HF_FOTA_SIZE_MAX */
    char desc[HF_FOTA_DESC_MAX];        /* 12: description, quotes removed, control chars -> '?' */
    int desc_truncated;                 /* description longer than we keep */
    long error_code;                    /* 13/20: module error code; -1 when absent */
} hf_fotastate;

/* Is this line a ^FOTASTATE line at all (prefix only)? */
int hf_is_fotastate(const char *line, size_t len);
int hf_parse_fotastate(const char *line, size_t len, hf_fotastate *out, hf_error *err);

/* ^FOTADLQ: <index>,"<name>",<downloaded>,<total>. The byte counts take up to 10
 * digits on every CPU: 64 bits, not unsigned long (32 bits on mips/armhf routers). */
typedef struct hf_fotadlq {
    unsigned index;
    char name[HF_FOTA_NAME_MAX];
    unsigned long long done, total;
} hf_fotadlq;

int hf_is_fotadlq(const char *line, size_t len);
int hf_parse_fotadlq(const char *line, size_t len, hf_fotadlq *out, hf_error *err);

/* ^FOTACFG: "apn","user","pw",<auth> */
typedef struct hf_fotacfg {
    char apn[HF_FOTACFG_FIELD_MAX + 1], user[HF_FOTACFG_FIELD_MAX + 1],
        password[HF_FOTACFG_FIELD_MAX + 1];
    int auth;                           /* 0 none, 1 PAP, 2 CHAP (0..3 accepted) */
} hf_fotacfg;

int hf_parse_fotacfg(const char *line, size_t len, hf_fotacfg *out, hf_error *err);

/* ^FOTAMODE: <auto_query>,<auto_download>,<auto_upgrade>,<resume>[,<period>] */
typedef struct hf_fotamode {
    int auto_query, auto_download, auto_upgrade, resume;   /* 0 or 1 */
    int has_period;
    unsigned period;                    /* days, 0..65535 */
} hf_fotamode;

int hf_parse_fotamode(const char *line, size_t len, hf_fotamode *out, hf_error *err);

/* +CPIN: <code>. Returns 1 for READY, 0 for anything else (code copied to
 * what, e.g. "SIM PIN"), -1 when the line is not a +CPIN answer. */
int hf_parse_cpin(const char *line, size_t len, char *what, size_t what_cap);

/* +CREG:/+CGREG: [<n>,]<stat>[,...]. Returns the stat (0..5...), or -1 when the
 * line is neither. */
int hf_parse_creg(const char *line, size_t len);
/* stat 1 (home) or 5 (roaming) */
int hf_creg_registered(int stat);
const char *hf_creg_stat_text(int stat);

/* 1 when s[0..n) has an IMEI's form: 14 to 17 decimal digits (IMEI without or with its
 * check digit, IMEISV). The one rule for AT+CGSN answers, journals and expected IMEIs. */
int hf_imei_form(const char *s, size_t n);

/* 1 when s is an IMEI whose check digit holds: 15 decimal digits, the last the Luhn
 * digit of the first 14 (3GPP TS 23.003). A reading with a digit lost or changed on
 * the line fails it (except one change in ten); 0 otherwise. */
int hf_imei_checked(const char *s);

/* Supported-module table (protocol reference). The table's rows are product
 * variants, not ATI strings, so lookup matches the family as ATI prints it
 * (case-insensitive, trimmed): a row's own name; "MU509" with a variant letter
 * ("MU509-b", "mu509 g", "MU509-c"), or without one, when the running firmware's
 * family decides (11.x: MU509-c, else MU509-b/-g); "MU609" in any form ("MU609",
 * "MU609-b", "HUAWEI MU609 (mini PCIE)"), where 12.107.x firmware (or "AT&T" in the
 * name) selects the AT&T rows ("mini" the mini PCIe one; when ATI names neither
 * variant, the lower minimum). running may be NULL (unknown). NULL when the model
 * is no MU509/MU609. */
typedef struct hf_model_entry {
    const char *model;
    const char *min_firmware;
} hf_model_entry;

const hf_model_entry *hf_model_match(const char *model, size_t len, const hf_version *running);
/* hf_model_match with the firmware unknown. */
const hf_model_entry *hf_supported_model(const char *model, size_t len);
/* Does an integrator's table key match ATI's model? Case-insensitive, trimmed: the
 * whole name, or the key followed by a non-alphanumeric character in the model
 * ("MU709" matches "MU709", "mu709-s" and "MU709 (mini PCIe)", not "MU7090"). */
int hf_model_key_matches(const char *key, const char *model, size_t len);
const hf_model_entry *hf_model_table(size_t *n);

/* Meaning of a 13/20 error code ("MD5 check failed"); "not in the table" when
 * the code is not in the protocol reference's list (callers print the raw code
 * next to it). Never NULL. */
const char *hf_fota_error_meaning(long code);

/* Name of a FOTA state number ("idle", "downloading" ...), "unknown" otherwise. */
const char *hf_fota_state_name(int state);

/* Trim helpers shared with the state machine: skip spaces/tabs at both ends. */
void hf_trim(const char **s, size_t *len);
/* Copy s[0..n), trimmed, into dst (bounded, NUL-terminated), control and non-ASCII bytes as '?'. */
void hf_copy_printable(char *dst, size_t cap, const char *s, size_t n);
/* Does line[0..len) start with prefix (case-sensitive)? */
int hf_has_prefix(const char *line, size_t len, const char *prefix);
/* Case-insensitive search for needle in s[0..len). */
int hf_contains_ci(const char *s, size_t len, const char *needle);

#endif
