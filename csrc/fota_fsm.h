/*
 * fota_fsm.h — the Huawei FOTA state machine: pure, events in, actions out.
 *
 * It never touches a port, a file or a clock: the owner (the Lua binding's
 * session, or a test) feeds events that carry the time `now` (seconds, monotonic)
 * and carries out the actions it gets back:
 *   SEND    write this AT command (one in flight at a time; the FSM waits for its
 *           result event before it sends another);
 *   TIMER   call back with a TIMER event at this absolute time (replaces the
 *           previous timer; an early or late TIMER event is harmless);
 *   REOPEN  the port is gone: find the module again (by USB identity), reopen the
 *           port, do the port setup (ATE0, AT+CMEE=2) and feed PORT_BACK — or a
 *           TIMER event once `at` (the deadline) has passed;
 *   JOURNAL persist hf_fota_snapshot() now (a phase change worth surviving a crash;
 *           it comes BEFORE the SEND it protects, e.g. before AT^FWUP);
 *   EMIT    tell the user/policy something (state, progress, decision needed ...).
 *
 * Port setup (ATE0, AT+CMEE=2) is the session's job, at open and after every
 * REOPEN: PORT_BACK means "reopened and set up". The FSM sends everything else.
 *
 * Safety rules enforced here, whatever the policy says: AT^FWUP only when the last
 * module state read (by a fresh AT^FOTASTATE? just before) is 40 and the announced
 * version is newer than the running one (or force); at most once per downloaded
 * image (fwup_sent survives in the journal); never retried.
 */
#ifndef HF_FOTA_FSM_H
#define HF_FOTA_FSM_H

#include <stddef.h>

#include "fota_cmds.h"
#include "fota_parse.h"
#include "hf_error.h"

#define HF_FOTA_ACTIONS_MAX 16
#define HF_FOTA_TEXT_MAX HF_ERROR_MSG_MAX      /* command text or message */
#define HF_FOTA_SNAPSHOT_VERSION 1

typedef enum hf_fota_phase {
    HF_PH_IDLE = 0,         /* created, not started */
    HF_PH_PROBE,            /* ATI or AT+GMR, AT+CGSN: model, firmware, IMEI */
    HF_PH_PREPARE,          /* AT+CPIN?, AT+CREG?, AT+CGREG? */
    HF_PH_CONFIGURE,        /* AT^FOTACFG=, AT^FOTAMODE=, AT^FOTASTATE? then dispatch */
    HF_PH_DETECT,           /* AT^FOTADET, wait for 11 then 12/13/14 */
    HF_PH_DECIDE_DOWNLOAD,  /* new version announced: policy says download/defer/reject */
    HF_PH_DOWNLOAD,         /* AT^FOTADL=1, poll AT^FOTADLQ / AT^FOTASTATE? until 40 */
    HF_PH_PAUSED,           /* AT^FOTADL=2 accepted: state 31 until resume */
    HF_PH_RECOVER,          /* port lost while downloading: reopen, read the state */
    HF_PH_DOWNLOADED,       /* 40 with automatic upgrade on: wait for the module's 50 */
    HF_PH_DECIDE_UPGRADE,   /* 40: policy says upgrade/defer */
    HF_PH_UPGRADE,          /* AT^FOTASTATE? (must be 40) then AT^FWUP, once */
    HF_PH_REBOOT,           /* 50 / reset: wait (bounded) for the port to come back */
    HF_PH_VERIFY,           /* AT+CGSN, AT+GMR, AT^FOTASTATE?: 90 and the new version */
    HF_PH_DISCARD,          /* AT^FOTADL=0 (reject/cancel) then finish */
    HF_PH_DONE,
    HF_PH_FAILED,
    HF_PH_COUNT
} hf_fota_phase;

typedef enum hf_fota_event_kind {
    HF_EV_RESULT = 1,   /* final result of the command in flight (raw lines: parsed here) */
    HF_EV_URC,          /* an unsolicited line (raw; ^FOTASTATE parsed here, others ignored) */
    HF_EV_STATE,        /* an already parsed ^FOTASTATE */
    HF_EV_PROGRESS,     /* an already parsed ^FOTADLQ list */
    HF_EV_TIMER,
    HF_EV_PORT_LOST,
    HF_EV_PORT_BACK,
    HF_EV_DECISION,
    HF_EV_CANCEL,
    HF_EV_PAUSE,
    HF_EV_RESUME,
    HF_EV_COUNT
} hf_fota_event_kind;

typedef enum hf_fota_final {
    HF_FF_OK = 0,
    HF_FF_ERROR,        /* ERROR, COMMAND NOT SUPPORT, TOO MANY PARAMETERS, +CMS ERROR ... */
    HF_FF_CME,          /* +CME ERROR: code or text */
    HF_FF_TIMEOUT,      /* no final within the engine's deadline */
    HF_FF_PORTLOST,     /* the port went away while the command was queued/in flight */
    HF_FF_CANCELLED,    /* the engine dropped it */
} hf_fota_final;

typedef enum hf_fota_decision {
    HF_DEC_DOWNLOAD = 1,
    HF_DEC_DEFER,
    HF_DEC_REJECT,
    HF_DEC_UPGRADE,
    HF_DEC_KEEP,        /* "keep_until_reboot": leave a downloaded image in 40 (the module
                         * applies it at its next reboot); elsewhere as DEFER */
} hf_fota_decision;

typedef struct hf_fota_event {
    hf_fota_event_kind kind;
    double now;
    /* RESULT */
    unsigned long id;               /* id of the SEND action; 0: match by text */
    const char *command;            /* optional: the command text (NUL-terminated) */
    hf_fota_final final;
    long code;                      /* CME code, -1 when textual/absent */
    const char *text;               /* CME/ERROR text ("" or NULL) */
    size_t text_len;
    const char *const *lines;       /* response lines, explicit lengths */
    const size_t *line_lens;
    size_t nlines;
    /* URC */
    const char *line;
    size_t line_len;
    /* STATE */
    const hf_fotastate *state;
    /* PROGRESS */
    const hf_fotadlq *files;
    size_t nfiles;
    /* DECISION */
    hf_fota_decision decision;
} hf_fota_event;

typedef enum hf_fota_action_kind {
    HF_ACT_SEND = 1,
    HF_ACT_TIMER,
    HF_ACT_REOPEN,
    HF_ACT_JOURNAL,
    HF_ACT_EMIT,
} hf_fota_action_kind;

typedef enum hf_fota_emit {
    HF_EMIT_STATE = 1,      /* code = FOTA state, name = its name */
    HF_EMIT_PROGRESS,       /* data in hf_fota.progress */
    HF_EMIT_NEW_VERSION,    /* hf_fota.target, .size, .desc */
    HF_EMIT_DECISION,       /* name = "download" | "upgrade" */
    HF_EMIT_PHASE,          /* name = new phase name */
    HF_EMIT_INFO,           /* hf_fota.model, .running, .imei known (after probe) */
    HF_EMIT_NOTICE,         /* text = something a person should know; not a failure */
    HF_EMIT_DONE,           /* name = outcome: "upgraded" | "no_new_version" | "deferred" | "rejected" */
    HF_EMIT_FAILED,         /* name = error code ("ECOLLISION"), text = message, code = module code or -1 */
} hf_fota_emit;

typedef struct hf_fota_action {
    hf_fota_action_kind kind;
    hf_fota_emit emit;              /* EMIT */
    unsigned long id;               /* SEND: the id the RESULT should carry */
    double at;                      /* TIMER: when; REOPEN: deadline */
    long code;                      /* see hf_fota_emit */
    const char *name;               /* static string, see hf_fota_emit; SEND: command name */
    const char *prefix;             /* SEND: the response prefix to collect ("^FOTASTATE:"),
                                       NULL with expect ALL/NONE */
    int expect;                     /* SEND: HF_FOTA_EXPECT_* (maps to hf_at_expect) */
    char text[HF_FOTA_TEXT_MAX];    /* SEND: the command; NOTICE/FAILED: the message */
} hf_fota_action;

typedef struct hf_fota_actions {
    size_t n;
    hf_fota_action a[HF_FOTA_ACTIONS_MAX];
    unsigned long dropped;          /* actions that did not fit (a bug if ever non-zero) */
} hf_fota_actions;

/* An integrator's row of the supported-model table (option `models`). */
#define HF_FOTA_MODELS_MAX 16
typedef struct hf_fota_model {
    char model[HF_MODEL_MAX];               /* key: see hf_model_key_matches */
    char min_firmware[HF_VERSION_TEXT_MAX]; /* a valid version (checked by hf_fota_init) */
} hf_fota_model;

typedef struct hf_fota_config {
    int force;                      /* allow same-version or older targets */
    int skip_model_check;           /* AT+GMR instead of ATI; no supported-table check */
    const hf_fota_model *models;    /* nmodels rows checked before the built-in table
                                       (at most HF_FOTA_MODELS_MAX), owned by the caller
                                       for the machine's lifetime: most runs give none,
                                       and 16 rows in each machine were 1.4 KB */
    size_t nmodels;
    int check_prereq;               /* AT+CPIN?, AT+CREG?, AT+CGREG? (default 1) */
    int read_imei;                  /* AT+CGSN at probe and after the reboot (default 1) */
    int has_cfg;                    /* send AT^FOTACFG= */
    char apn[HF_FOTA_CRED_MAX + 1], user[HF_FOTA_CRED_MAX + 1], password[HF_FOTA_CRED_MAX + 1];
    int auth;                       /* 0 none, 1 PAP, 2 CHAP */
    int has_mode;                   /* send AT^FOTAMODE= */
    hf_fotamode mode;
    int resume;                     /* resumable download on (taken from mode when given) */
    int auto_upgrade_ok;            /* without has_mode: the mode sent before a download
                                       may turn automatic upgrade on (0,0,1,1): no policy
                                       decision stands between download and upgrade (0) */
    double poll_interval;           /* AT^FOTASTATE? fallback while waiting (3 s) */
    double dl_poll, dl_poll_idle;   /* AT^FOTADLQ while downloading (3 s, 5 s when idle) */
    double state_poll;              /* during download, AT^FOTASTATE? if no URC for (15 s) */
    double resume_interval;         /* AT^FOTADL=1 from 31 at most this often (30 s) */
    double reboot_timeout;          /* port back after the reset (180 s) */
    double detect_timeout;          /* 11 -> 12/13/14 (120 s) */
    double stall_timeout;           /* no download progress (300 s) */
    double auto_upgrade_wait;       /* 40 -> module's own 50 with auto upgrade (120 s) */
    double busy_delay;              /* retry after "previous command not complete" (2 s) */
    double boot_settle;             /* AT^FWUP no sooner after the port (re)opens (20 s) */
    double discard_timeout;         /* AT^FOTADL=0 -> idle (10) confirmed (30 s) */
    unsigned cmd_retries;           /* retries of timed-out idempotent queries (2) */
    unsigned max_redetect;          /* re-detections after a lost download (2) */
} hf_fota_config;

/* The journal: small, fixed, validated on restore (it comes from a file). */
typedef struct hf_fota_snapshot {
    unsigned version;               /* HF_FOTA_SNAPSHOT_VERSION */
    hf_fota_phase phase;
    char from_version[HF_VERSION_TEXT_MAX];     /* "" when unknown */
    char target_version[HF_VERSION_TEXT_MAX];   /* "" when unknown */
    unsigned long size;
    int fwup_sent;                  /* AT^FWUP written for this image: never again */
    int fwup_retry;                 /* the one AT^FWUP after a restart that found the image
                                       untouched in 40 went out (journal line only when 1) */
    int image_verified;             /* state 40 seen for this image */
    unsigned image_seq;             /* downloads started (an image per download) */
    unsigned detect_attempts, resume_attempts;
    char imei[HF_IMEI_MAX];
    double started_at, phase_at;
} hf_fota_snapshot;

typedef struct hf_fota {
    hf_fota_config cfg;
    hf_fota_phase phase;
    double now, phase_at, started_at;
    /* the command in flight */
    hf_fota_cmd cmd;
    unsigned long cmd_id, next_id;
    char cmd_text[HF_FOTA_TEXT_MAX];
    unsigned cmd_tries;
    int cmd_in_script;              /* the command is a step of the phase's script */
    unsigned cmd_gen;               /* phase entry (gen) the command was sent in */
    hf_fota_cmd next_cmd;           /* waits for the command in flight to finish */
    int next_in_script;
    hf_fota_cmd retry_cmd;          /* resend after busy_delay ("not complete") */
    unsigned gen;                   /* phase entries so far: detects "the answer moved us" */
    /* the phase's command script */
    hf_fota_cmd script[4];
    size_t nscript, step;
    /* timers: one owner-visible timer = min(deadline, poll) */
    double deadline, next_poll, timer_at;
    int deadline_deferred;          /* the phase's deadline passed with a command in
                                     * flight: it fires once that command's result is in */
    /* what we know of the module */
    char model[HF_MODEL_MAX];
    char imei[HF_IMEI_MAX];
    int have_running, have_from, have_target;
    hf_version running, from, target;
    unsigned long size;
    char desc[HF_FOTA_DESC_MAX];
    int last_state;                 /* last ^FOTASTATE seen, -1 none */
    long last_state_code;
    double last_state_at;
    int state_seen_since_back;      /* a state arrived after PORT_BACK / entering verify */
    int saw_querying;               /* 11 seen during detection */
    int detect_wait_only;           /* module already in 11: no AT^FOTADET */
    int announced;                  /* new_version emitted for the target */
    int want_dl_start;              /* entering download sends AT^FOTADL=1 */
    double resume_due;              /* next allowed AT^FOTADL=1 from 31, or -1 */
    unsigned reboots;               /* port losses after the upgrade (bounded) */
    hf_fota_progress progress;
    double progress_at;             /* last change of progress (stall detection) */
    double dl_interval;             /* current AT^FOTADLQ interval (backs off) */
    double last_resume_at;
    /* safety and bookkeeping (journaled) */
    int fwup_sent, image_verified;
    unsigned image_seq, detect_attempts, resume_attempts, fwup_count;
    int restored;                   /* started from a journal */
    int fwup_restored;              /* ... from a journal file (not a carried snapshot)
                                       saying AT^FWUP was sent (by an earlier process) */
    int fwup_retry;                 /* the once-only AT^FWUP after a restart went out */
    int fwup_again;                 /* that AT^FWUP is allowed now (not journaled) */
    /* AT^FOTAMODE since the port last opened: the module resumes a download only
     * after it (guide 2.3.3) */
    int mode_sent, mode_resume, mode_up;
    hf_fotamode mode_now;           /* the mode of the AT^FOTAMODE in flight */
    hf_fota_phase restored_phase;
    int port_lost;                  /* waiting for PORT_BACK */
    /* identity: no command that changes the module's state goes to a module whose
     * IMEI was not confirmed since the port (re)opened (send_cmd's second gate) */
    int identity_ok;                /* confirmed (or the module the caller opened) */
    int confirming;                 /* PORT_BACK: AT+CGSN in flight before the phase goes on */
    int identity_since_back;        /* the IMEI was confirmed after the last PORT_BACK */
    char imei_odd[HF_IMEI_MAX];     /* the last AT+CGSN reading not yet trusted ("" none) */
    unsigned imei_reads;            /* readings not trusted since the last trusted one */
    int foreign;                    /* EIDENTITY: another module; nothing journaled */
    int imei_expected;              /* hf_fota_expect_imei: the probe confirms f->imei */
    int pause_requested, cancel_requested;
    int unseen_offers;              /* offers discarded because their version was never seen */
    int dl_approved;                /* the policy approved downloading the target */
    int redetect;                   /* DISCARD then DETECT: an offer of unknown version */
    const char *discard_code;       /* DISCARD then fail with this code (and discard_msg) */
    long discard_mcode;
    char discard_msg[200];
    unsigned discard_tries;         /* AT^FOTADL=0 rounds in this DISCARD */
    int discard_from;               /* the state the DISCARD started from */
    int discard_resend;             /* AT^FOTADL=0 refused/unanswered: send it again */
    int clearing_end;               /* this DISCARD clears an end state (13/14/20/90/...) */
    int end_cleared;                /* an end state was cleared this run (once only) */
    double up_at;                   /* when the port was last opened or came back */
    int parse_errors;               /* malformed status lines tolerated in a row */
    const char *outcome;            /* for DISCARD: the outcome to finish with */
    const char *fail_code;          /* last failure */
    hf_fota_phase failed_in;        /* the phase the failure happened in */
    unsigned long ignored;          /* events not accepted in their phase */
    hf_fota_actions *out;           /* during a call only */
} hf_fota;

void hf_fota_config_default(hf_fota_config *cfg);

/* Validate cfg (APN/user/password: <= 63 bytes, none of " CR LF ; NUL; auth 0..2;
 * intervals positive and bounded) and set up fsm in phase IDLE. -1 + EINVAL. */
int hf_fota_init(hf_fota *fsm, const hf_fota_config *cfg, hf_error *err);

/* Start the operation (once). Returns the number of actions (>= 1). */
size_t hf_fota_start(hf_fota *fsm, double now, hf_fota_actions *out);

/* Feed one event. Returns the number of actions in out (0 when the event was
 * ignored). Never fails: a bad event is ignored and counted in fsm->ignored. */
size_t hf_fota_feed(hf_fota *fsm, const hf_fota_event *ev, hf_fota_actions *out);

void hf_fota_snapshot_take(const hf_fota *fsm, hf_fota_snapshot *snap);

/* Load a journal snapshot into an IDLE fsm before hf_fota_start. Every field is
 * checked (untrusted file); -1 + EJOURNAL when it is not acceptable. */
int hf_fota_restore(hf_fota *fsm, const hf_fota_snapshot *snap, hf_error *err);

/* The same for a snapshot carried from a machine of this process that held the port
 * until now (session steps): not an unwatched gap, so the target of a finished
 * machine (e.g. a deferred download) is trusted. hf_fota_restore (carried = 0)
 * drops the target of a finished journal unless AT^FWUP was sent. */
int hf_fota_restore_from(hf_fota *fsm, const hf_fota_snapshot *snap, int carried,
                         hf_error *err);
/* carried: 0 a journal file; HF_RESTORE_CARRIED the port stayed open (the module's
 * identity holds); HF_RESTORE_CARRIED_REOPENED the target is trusted as carried but the
 * port was reopened since, so the module is confirmed again (IMEI) as after a reopen */
#define HF_RESTORE_CARRIED 1
#define HF_RESTORE_CARRIED_REOPENED 2

/* The module this operation must find: the IMEI an earlier attempt of the same run
 * confirmed, on a port that was reopened since (its path may now name another module).
 * Before hf_fota_start, on an IDLE machine, with read_imei on. Nothing that changes the
 * module's state is sent until the probe's AT+CGSN confirms it, by the rule used after
 * a reopen: a reading that differs is asked again, two agreeing readings of another
 * IMEI fail EIDENTITY. -1 + EINVAL for a malformed IMEI or read_imei off, EBUSY when
 * not idle, EIDENTITY when a restored snapshot names another module. */
int hf_fota_expect_imei(hf_fota *fsm, const char *imei, hf_error *err);

const char *hf_fota_phase_name(hf_fota_phase phase);
int hf_fota_phase_from_name(const char *name, size_t len);   /* -1 unknown */
int hf_fota_terminal(const hf_fota *fsm);

/* Text of a command the FSM sends, its stem when built ("AT^FOTACFG="): the
 * command table's (fota_cmds.h), for tests and logs. */
const char *hf_fota_cmd_name(hf_fota_cmd cmd);

#endif
