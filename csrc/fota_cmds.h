/*
 * fota_cmds.h — the FOTA commands as data: one row per AT command the FOTA layer
 * sends (the state machine's, and the few the session and the command line send
 * outside it), each with its text (fixed, or built from validated parameters), the
 * response it expects, what its answer teaches (a parser into hf_fota_answer), what a
 * timeout allows (from its idempotence) and what a refusal means.
 *
 * Pure and stateless: no I/O, no allocation. The state machine (fota_fsm.c) drives
 * the rows generically; the Lua binding exposes them (core.fota_command,
 * core.fota_parse, core.setup_commands), so every layer sends and reads a command
 * the same way. Adding a FOTA command: one row here, its parser (fota_parse.c), its
 * simulator behaviour (csrc/sim) and its tests.
 */
#ifndef HF_FOTA_CMDS_H
#define HF_FOTA_CMDS_H

#include <stddef.h>

#include "fota_parse.h"
#include "hf_error.h"

#define HF_FOTA_CRED_MAX 63             /* APN, user, password length limit */
#define HF_FOTA_PERIOD_MIN 1            /* AT^FOTAMODE's <period> (days): the module's */
#define HF_FOTA_PERIOD_MAX 365          /* test form advertises (1-365) */
#define HF_FOTA_ANSWER_STATES 8         /* ^FOTASTATE lines kept from one answer (the last) */

typedef enum hf_fota_cmd {
    HF_CMD_NONE = 0, HF_CMD_ATI, HF_CMD_GMR, HF_CMD_CGSN, HF_CMD_CPIN, HF_CMD_CREG,
    HF_CMD_CGREG, HF_CMD_FOTACFG, HF_CMD_FOTAMODE, HF_CMD_STATE, HF_CMD_FOTADET,
    HF_CMD_DL_START, HF_CMD_DL_PAUSE, HF_CMD_DL_STOP, HF_CMD_DLQ, HF_CMD_FWUP,
    /* not sent by the state machine: the session's and the command line's */
    HF_CMD_CFG_READ, HF_CMD_ECHO_OFF, HF_CMD_CMEE, HF_CMD_PROBE,
    HF_CMD_COUNT
} hf_fota_cmd;

/* What the response holds, for the AT engine's routing (same order as hf_at_expect:
 * ALL, NONE, PREFIXES). */
enum { HF_FOTA_EXPECT_ALL = 0, HF_FOTA_EXPECT_NONE, HF_FOTA_EXPECT_PREFIX };

/* A timeout: the command may or may not have acted. Only an idempotent command is
 * sent again (RESEND); any other never is: the machine reads the state and lets the
 * phase decide (ASK_STATE), or carries on as if it had acted (NEVER: AT^FWUP, whose
 * reset is then waited for). hf_fota_cmd_check_table enforces this. */
typedef enum hf_fota_tmo { HF_TMO_RESEND = 1, HF_TMO_ASK_STATE, HF_TMO_NEVER } hf_fota_tmo;

/* What an OK means beyond the lines it carries. */
typedef enum hf_fota_ok {
    HF_OK_NOTHING = 0,
    HF_OK_MODE_SET,         /* the module holds the mode sent (resume allowed after a boot) */
    HF_OK_DL_STARTED,       /* a download (re)start went through */
    HF_OK_TO_REBOOT,        /* the module upgrades now: wait for its reset */
    HF_OK_TO_PAUSED,        /* the download is paused */
} hf_fota_ok;

/* What a refusal (ERROR, +CME ERROR ...) means. The texts every command shares come
 * first (collision: a data session; "SIM PIN"; "not complete": retried after a delay),
 * except for ASK_STATE and FINAL rows, whose own rule comes first. */
typedef enum hf_fota_refusal {
    HF_REF_FAIL = 0,        /* fail with err_code and err_msg */
    HF_REF_FINAL,           /* the same, before the shared texts, never retried (AT^FWUP) */
    HF_REF_ASK_STATE,       /* before the shared texts: read the state; the phase decides
                               whether to send it again (AT^FOTADL=0) */
    HF_REF_IGNORE,          /* an optional answer: carry on (AT^FOTADLQ) */
    HF_REF_UNKNOWN_OK,      /* in a script, an unsupported-command answer leaves `subject`
                               unknown: a notice, the next step; else fail */
    HF_REF_SKIP_IN_DOWNLOAD,/* refused before AT^FOTADL=1: a notice, the start goes on */
    HF_REF_DROP_REQUEST,    /* the request is dropped with a notice (AT^FOTADL=2) */
} hf_fota_refusal;

/* Facts an answer can teach (hf_fota_answer.has). */
#define HF_ANS_MODEL      0x001u    /* model (ATI "Model:") */
#define HF_ANS_FIRMWARE   0x002u    /* a readable firmware version */
#define HF_ANS_IMEI       0x004u
#define HF_ANS_SIM        0x008u    /* sim_ready, sim_what */
#define HF_ANS_REG        0x010u    /* reg_stat (-1: no answer) */
#define HF_ANS_STATE      0x020u    /* states[0..nstates): the last one is the answer */
#define HF_ANS_PROGRESS   0x040u    /* progress */
#define HF_ANS_CFG        0x080u    /* cfg (AT^FOTACFG?) */
#define HF_ANS_MAKER      0x100u    /* manufacturer */
#define HF_ANS_REVISION   0x200u    /* revision: the firmware text as the module wrote it */

typedef struct hf_fota_progress {
    size_t nfiles;
    hf_fotadlq files[HF_FOTA_FILES_MAX];    /* done clamped to total */
    unsigned long long done, total;         /* sums; done <= total (64 bits on any CPU:
                                               8 files of up to 10 digits each) */
    unsigned percent;                       /* 0..100 */
} hf_fota_progress;

/* What one answer said, as far as its lines could be read (bounded copies). */
typedef struct hf_fota_answer {
    unsigned has;                           /* HF_ANS_* */
    char manufacturer[HF_MODEL_MAX], model[HF_MODEL_MAX];
    char revision[HF_VERSION_TEXT_MAX];
    hf_version firmware;
    char imei[HF_IMEI_MAX];
    int sim_ready;
    char sim_what[48];
    int reg_stat;
    int reg_ps;                             /* +CGREG (packet data), not +CREG */
    size_t nstates;
    hf_fotastate states[HF_FOTA_ANSWER_STATES];
    hf_fota_progress progress;
    hf_fotacfg cfg;
} hf_fota_answer;

/* Parameters of the commands built from them (AT^FOTACFG=, AT^FOTAMODE=). */
typedef struct hf_fota_cmd_params {
    const char *apn, *user, *password;      /* NUL-terminated; NULL is "" */
    int auth;                               /* 0 none, 1 PAP, 2 CHAP */
    hf_fotamode mode;
} hf_fota_cmd_params;

typedef struct hf_fota_cmd_def {
    const char *name;       /* its name for Lua and logs ("state", "dl_start") */
    const char *text;       /* the command, or its stem when built ("AT^FOTACFG=") */
    int (*build)(const hf_fota_cmd_params *p, char *dst, size_t cap, hf_error *err);
    int expect;             /* HF_FOTA_EXPECT_* */
    const char *prefix;     /* with EXPECT_PREFIX */
    double timeout;         /* seconds for a caller outside the machine; 0: the port's */
    int idempotent;         /* sending it twice does what sending it once does */
    hf_fota_tmo on_timeout;
    const char *timeout_notice;   /* said when it times out (NULL: nothing) */
    int changes_state;      /* changes what the module does or holds: identity-gated */
    int setup;              /* a port setup command (sent after every open) */
    void (*parse)(const char *const *lines, const size_t *lens, size_t n, hf_fota_answer *a);
    unsigned teaches;       /* HF_ANS_* the machine takes from the answer */
    unsigned needs;         /* HF_ANS_* an OK must carry ... */
    int unreadable_resend;  /* ... else it is asked again (cmd_retries), or fails with: */
    const char *unreadable_code, *unreadable_msg;
    hf_fota_ok ok;
    hf_fota_refusal refusal;
    const char *err_code;   /* refusal: the failure */
    const char *err_msg;    /* one %s: the module's text */
    int err_with_state;     /* the message names the FOTA state */
    int collision_by_state; /* a "collision" outside state 10 is the module's own state */
    const char *subject;    /* UNKNOWN_OK: what stays unknown */
} hf_fota_cmd_def;

/* The row of a command (HF_CMD_NONE for an out-of-range value: never NULL). */
const hf_fota_cmd_def *hf_fota_cmd_get(hf_fota_cmd c);
/* By name ("state"): HF_CMD_NONE when unknown. */
hf_fota_cmd hf_fota_cmd_by_name(const char *name, size_t len);

/* The text of command c into dst (NUL-terminated). Built commands check their
 * parameters with the rules below: -1 + EINVAL saying what and why. */
int hf_fota_cmd_text(hf_fota_cmd c, const hf_fota_cmd_params *p, char *dst, size_t cap,
                     hf_error *err);

/* Read an answer's lines into a (memset first): what the row's parser finds. 0, or -1
 * + EPROTO naming what the row needs and the answer lacked. */
int hf_fota_cmd_parse(hf_fota_cmd c, const char *const *lines, const size_t *lens, size_t n,
                      hf_fota_answer *a, hf_error *err);

/* Sum ^FOTADLQ records into p (done clamped to total, percent 0..100). */
void hf_fota_progress_sum(const hf_fotadlq *files, size_t n, hf_fota_progress *p);

/* The one rule for a text parameter that goes into an AT command (APN, user,
 * password): at most HF_FOTA_CRED_MAX bytes, no '"', ';', CR, LF, NUL or other
 * control byte (0x00-0x1F, 0x7F). 0 or -1 + EINVAL saying what and where. */
int hf_fota_check_at_param(const char *what, const char *s, size_t len, hf_error *err);

/* The AT^FOTAMODE rule: flags 0/1, period HF_FOTA_PERIOD_MIN..MAX days. */
int hf_fota_check_mode(const hf_fotamode *m, hf_error *err);

/* The rule for a port setup command (option `setup`: sent after every (re)open,
 * outside the state machine): it must not change what the module does. An allow-list
 * of forms, so that nothing slips through by spelling: basic commands E, V, Q, X
 * (optional digits) and &C, &D, &K in any order (ATE0V1); or one extended command
 * +NAME / ^NAME / %NAME / $NAME, bare, "?", "=?" or "=" with plain parameters
 * (letters, digits, space , . - _ / : and quoted text without + ^ % $ &); never
 * ^FOTA*, ^FWUP, +CFUN, ^RESET, ^GETPORTMODE (crashes the MU609), ^SETPORT, ^NVWR. No
 * ';' chaining, control byte, or text after the command (ATE0^FWUP). A line without
 * "AT" or "A/" anywhere (any case) is no command (the module discards it); any other
 * line must start with AT. At most 200 bytes. 0 or -1 + EINVAL saying why. */
int hf_fota_check_setup_command(const char *c, size_t n, hf_error *err);

/* The table's own consistency (tests): each row's timeout policy matches its
 * idempotence (RESEND only for idempotent rows), every row has a text. 0 or -1 +
 * EINVAL naming the row. */
int hf_fota_cmd_check_table(hf_error *err);

const char *hf_fota_tmo_name(hf_fota_tmo t);

#endif
