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
 * Writing it atomically (temp + fsync + rename) is the session's job.
 */
#ifndef HF_FOTA_JOURNAL_H
#define HF_FOTA_JOURNAL_H

#include <stddef.h>

#include "fota_fsm.h"
#include "hf_error.h"

#define HF_JOURNAL_TEXT_MAX 512

/* Format snap into buf (NUL-terminated). Returns the length, or -1 if cap is too small. */
int hf_journal_format(const hf_fota_snapshot *snap, char *buf, size_t cap);

/* Parse text strictly into snap (fields still need hf_fota_restore's checks).
 * -1 + EJOURNAL on any deviation from the format. */
int hf_journal_parse(const char *text, size_t len, hf_fota_snapshot *snap, hf_error *err);

#endif
