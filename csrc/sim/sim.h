/*
 * sim.h — hwfota-sim, a simulated Huawei MU509/MU609 module (or many) on ptys.
 *
 * Independent of hwfota's library on purpose: its own line handling, its own
 * FOTA state machine, so that a bug in one cannot hide a bug in the other.
 *
 * Files: sim_main.c (options, scenario files, poll loop, ptys, log),
 *        sim_module.c (AT commands, FOTA states, timeline, faults, noise),
 *        sim_sms.c (text-mode SMS: storage, +CMTI, +CMGR/+CMGL/+CMGD, --sms/--urc).
 */
#ifndef HWFOTA_SIM_H
#define HWFOTA_SIM_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

#define SIM_MAX_MODULES 1024
#define SIM_INBUF 4096
#define SIM_OUTBUF (64 * 1024)
#define SIM_STR 256
#define SIM_DESC 2048

/* --ttys: the USB interfaces a module exposes as ttys, and what each one does. */
#define SIM_MAX_TTYS 6
enum { SIM_ROLE_PCUI = 0, SIM_ROLE_MODEM, SIM_ROLE_DIAG, SIM_ROLE_GPS };

/* When a fault fires. */
typedef enum { TRIG_NONE = 0, TRIG_BYTE, TRIG_STATE, TRIG_CMD, TRIG_TIME } trig_kind;

typedef struct {
    trig_kind kind;
    double val;          /* byte offset, state number or model seconds */
    char cmd[64];        /* TRIG_CMD: upper-case name ("FOTADL") or full body ("FOTADL=1") */
    int fired;
} sim_trigger;

/* An SMS (--sms TRIGGER:FROM:TEXT) or a raw URC line (--urc TRIGGER:LINE) to send. */
#define SIM_SMS_PLAN 8        /* --sms/--urc per module */
#define SIM_SMS_TEXT 161      /* 160 characters (one GSM 7-bit SMS) */
#define SIM_SMS_FROM 24       /* 20 characters */
#define SIM_SMS_SLOTS 20      /* default SIM storage ("SM") */
#define SIM_SMS_SLOTS_MAX 255
typedef struct {
    sim_trigger trig;
    int urc;                  /* 1: send text as a URC line as is (--urc) */
    char from[SIM_SMS_FROM];
    char text[SIM_STR];
} sim_sms_plan;

/* One stored message in SIM storage. */
typedef struct {
    int used;
    int unread;
    char from[SIM_SMS_FROM];
    char scts[32];
    char text[SIM_SMS_TEXT];
} sim_sms;

/* Faults one module carries (copied from the configuration). */
typedef struct {
    int no_new_version;      /* detection ends in 14 */
    int detect_fail;         /* detection ends in 13,<code> when > 0 */
    int download_fail;       /* download ends in 20,<code> when > 0 ... */
    double download_fail_at; /* ... at this byte */
    sim_trigger power_loss;
    int upgrade_fail;        /* state reported after the upgrade reset instead of 90 */
    sim_trigger port_gone;
    double port_gone_for;    /* model seconds; < 0: for good */
    sim_trigger hang;
    double hang_for;         /* model seconds */
    sim_trigger port_swap;   /* the port goes away and the same path comes back as ... */
    int swap_state;          /* ... another module (other IMEI) in this FOTA state */
    int hang_reject;         /* commands during a hang: +CME ERROR: Previous command is not complete */
    int garbage_every;       /* a garbage burst before every Nth line sent */
    int drop_every;          /* one byte dropped from every Nth line sent */
    int dup_state;           /* every ^FOTASTATE URC twice */
    int bad_state;           /* the URC for this state is sent malformed (-1: none) */
    int lose_state;          /* the URC for this state is not sent (-1: none) */
    int data_session;        /* a PS data session is up: collision */
    int sim_pin;             /* SIM PIN required */
    int not_registered;      /* +CREG: 0,0; detection/download fail with code 11 */
    sim_trigger long_line;   /* --long-line cmd=NAME:N: N noise bytes, no line end, before its answer */
    long long_line_len;
    int n_sms;               /* SMS / URC deliveries (trig.fired: done) */
    sim_sms_plan sms[SIM_SMS_PLAN];
} sim_faults;

typedef struct {
    int modules;
    char dir[PATH_MAX];
    char name_prefix[64];
    int name_start;
    char log_path[PATH_MAX];
    double time_scale;
    char model[64];
    char version_from[64];
    char version_to[64];
    char description[SIM_DESC];
    char manufacturer[128];
    unsigned long long imei_base; /* 14 digits; module i gets base+i and a Luhn digit */
    long image_size, xnv_size;
    double rate;                  /* bytes per model second */
    double detect_time, verify_time, upgrade_delay, reset_delay, reset_gap, boot_time;
    double noise;                 /* noise URCs per real second per module */
    double day;                   /* model seconds per day of the auto-query period */
    unsigned long seed;
    int unknown_error;            /* 1: unknown commands answer ERROR */
    char unsupported[SIM_STR];    /* --unsupported: "+CMEE?,+CPIN" (names or name+form) */
    int cmee_default;
    int drop_closed;              /* lines sent while no host holds the port are lost */
    int end_state;                /* --end-state: END_KEEP (default), END_KEEP_ALL, END_IDLE */
    double discard_delay;         /* --discard-delay: AT^FOTADL=0 OK -> 10 (model seconds) */
    int discard_urc;              /* --discard-urc on: ^FOTASTATE: 10 when the discard took */
    int release_dead_host;        /* clear a dead host's TIOCEXCL (off: as a bare pty keeps it) */
    int resume_needs_mode;        /* after a boot, 31 resumes only after AT^FOTAMODE ..,1 */
    int n_ttys;                   /* --ttys: ttys per module, in interface order (1..SIM_MAX_TTYS) */
    int tty_role[SIM_MAX_TTYS];   /* SIM_ROLE_* of each */
    int pcui_index;               /* which of them is the AT port the module runs on */
    int n_ttys_after;             /* --ttys-after: the layout after an upgrade (0: unchanged) */
    int tty_role_after[SIM_MAX_TTYS];
    int pcui_after;
    int reenumerate;              /* --reenumerate next: back under the next free numbers */
    char pin[32];
    int sms_slots;                /* SIM message storage size */
    sim_faults faults;
    int fault_mask_set;
    unsigned char fault_mask[SIM_MAX_MODULES];
    sim_faults *module_faults[SIM_MAX_MODULES]; /* scenario [module N] sections */
} sim_config;

/* --end-state: what the end-of-operation states (90, failures >= 60; 13, 14, 20) do. */
enum { END_KEEP = 0, END_KEEP_ALL, END_IDLE };

/* Pending timeline step of the FOTA process. */
typedef enum {
    EV_NONE = 0, EV_DETECT_DONE, EV_DL_THRESHOLD, EV_VERIFY_DONE, EV_UPGRADE_START,
    EV_RESET, EV_AUTO_QUERY, EV_DISCARD_DONE
} sim_event;

typedef enum { BOOT_NONE = 0, BOOT_UPGRADE, BOOT_POWER_LOSS, BOOT_PORT_BACK, BOOT_SWAP } sim_boot;

typedef struct sim_module {
    int idx;
    const sim_config *cfg;
    sim_faults f;
    char path[PATH_MAX + 128];
    char imei[16];
    char version[64];
    int mfd, sfd;                 /* pty master and our own slave fd; -1 when gone */
    char pts[64];
    int gone_for_good;
    int swapped;                  /* --port-swap fired: this pty is now another module */
    int host;                     /* --closed-port drop: a host holds the slave */
    double host_check_at;         /* ... next look for one */
    int close_wd;                 /* inotify watch on the slave: a host closed it */
    int logged_state;             /* last state written to the log (-1 none) */

    /* AT settings (reset at boot) */
    int echo, verbose, cmee, curc, creg_n, cgreg_n;
    int sim_locked;
    int cmgf;                     /* 0 PDU (default), 1 text */
    int cnmi[5];                  /* +CNMI: mode,mt,bm,ds,bfr (default 0,0,0,0,0) */

    /* SIM message storage: survives resets (it is on the SIM); allocated at first use */
    sim_sms *sms;

    /* FOTA configuration and state */
    char apn[SIM_STR], user[SIM_STR], pw[SIM_STR];
    int auth;
    int auto_query, auto_dl, auto_up, resume, period;
    int mode_wanted;              /* a download pending in 31 survived a boot and no
                                     AT^FOTAMODE with resume=1 came since */
    int state;
    int have_delta;               /* a version was found (12 reached) */
    double done;                  /* bytes downloaded */
    double dl_t0, dl_b0;          /* download start time (real) and bytes then */
    double dl_target;             /* byte the pending EV_DL_THRESHOLD stops at */

    sim_event ev;
    double ev_at;                 /* real time of ev */
    double port_back_at;          /* real time the pty returns (0: not pending) */
    sim_boot boot_kind;           /* what the pty's return means */
    sim_boot post_kind;           /* what the post-boot step reports */
    int post_superseded;          /* a state change since the boot: no boot report */
    double post_boot_at;          /* real time of the post-boot ^FOTASTATE */
    double noise_at;
    double busy_until;            /* hang: commands wait until then */
    char held[SIM_INBUF];         /* the command that triggered the hang */
    int have_held;
    int pending_power, pending_gone, pending_swap; /* state/command-triggered faults ... */
    double pending_at;               /* ... fire then (output drains first) */
    int dl_fail_fired;

    unsigned long lines_sent;
    int resp_info;                /* info lines sent in the current response */

    char in[SIM_INBUF];
    size_t inlen;
    int in_overflow;
    char out[SIM_OUTBUF];
    size_t outlen;
} sim_module;

/* sim_main.c */
double sim_now(void);                         /* real seconds since start */
void sim_log(int m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sim_json_str(char *dst, size_t cap, const char *s);
int sim_publish(sim_module *m);               /* new pty + symlink; 0 ok */
void sim_unpublish(sim_module *m, int remove_link);
unsigned long sim_rand(void);
double sim_rand01(void);
int sim_parse_trigger(const char *s, sim_trigger *t);

/* sim_module.c */
void mod_init(sim_module *m, int idx, const sim_config *cfg, const sim_faults *faults);
void mod_boot(sim_module *m);                 /* first boot: settings + start-up URCs */
void mod_input(sim_module *m, const char *buf, size_t n);
void mod_tick(sim_module *m, double now);     /* run every due timer */
double mod_next_deadline(const sim_module *m);/* earliest pending real time, or 0 */
void mod_flush(sim_module *m);                /* write queued output */
int mod_port_open(const sim_module *m);       /* pty up and (drop mode) held by a host */
void mod_host_closed(sim_module *m);          /* --closed-port drop: master saw EIO/HUP */
void mod_free(sim_module *m);                 /* release what the module allocated */

/* sim_module.c helpers that sim_sms.c shares */
typedef struct {
    char s[SIM_STR];
    int quoted;
} sim_param;
int mod_params(const char *p, sim_param *out, int max);  /* count, max+1 too many, -1 bad */
int mod_int_param(const sim_param *q, int lo, int hi, int *out);
void mod_info(sim_module *m, const char *text);
void mod_final(sim_module *m, const char *text);
void mod_urc(sim_module *m, const char *text);
int mod_cmd_matches(const char *body, const sim_trigger *t);
double mod_bytes_now(const sim_module *m, double now);

/* sim_sms.c */
int sms_parse_plan(const char *v, int urc, sim_sms_plan *p); /* "TRIGGER:FROM:TEXT" / "TRIGGER:LINE" */
void sms_defaults(sim_module *m);             /* +CMGF/+CNMI after boot */
void sms_deliver(sim_module *m, sim_sms_plan *p);
void sms_check_state(sim_module *m, int st);  /* state= triggers */
void sms_check_cmd(sim_module *m, const char *body, int *match); /* cmd= triggers: which match */
void sms_after_cmd(sim_module *m, const int *match);
void sms_tick(sim_module *m, double now);     /* time= and byte= triggers */
double sms_next_deadline(const sim_module *m);
/* The SMS commands (+CMGF, +CPMS, +CNMI, +CMGR, +CMGL, +CMGD); 1 when name is one. */
int sms_command(sim_module *m, const char *name, int form, const char *args);

#endif
