/*
 * fota_journal.h — the FOTA journal snapshot as a small versioned text, and its
 * strict parser (the text comes back from a file on flash: untrusted).
 *
 * Format (one "key=value" per line, this exact order, LF line ends):
 *   hwfota-journal 1
 *   phase=<name>  from=<version|>  target=<version|>  size=<n>  fwup_sent=<0|1>
 *   image_verified=<0|1>  image_seq=<n>  detect_attempts=<n>  resume_attempts=<n>
 *   imei=<digits|>  started=<seconds>  phase_at=<seconds>
 *   end
 * Writing it atomically (temp + fsync + rename) is the session's job; hf_journal_check
 * validates a snapshot's fields before the state machine restores it.
 */
#ifndef HF_FOTA_JOURNAL_H
#define HF_FOTA_JOURNAL_H

#include <stddef.h>

#include "fota_fsm.h"
#include "hf_error.h"

#define HF_JOURNAL_TEXT_MAX 512

/* Format snap into buf (NUL-terminated). Returns the length, or -1 if cap is too small. */
int hf_journal_format(const hf_fota_snapshot *snap, char *buf, size_t cap);

/* Parse text strictly into snap (its fields still need hf_journal_check).
 * -1 + EJOURNAL on any deviation from the format. */
int hf_journal_parse(const char *text, size_t len, hf_fota_snapshot *snap, hf_error *err);

/* The versions a valid snapshot names (have_* 0 when its field is empty). */
typedef struct hf_journal_versions {
    hf_version from, target;
    int have_from, have_target;
} hf_journal_versions;

/* The checks a snapshot passes before hf_fota_restore uses it (it comes from a file:
 * untrusted): format version, phase, versions, flags and their combinations, size,
 * counters, IMEI, timestamps. 0 with the versions in v, or -1 + EJOURNAL. */
int hf_journal_check(const hf_fota_snapshot *s, hf_journal_versions *v, hf_error *err);

#endif
