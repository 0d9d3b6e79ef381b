/* test_error.c — hf_error records: bounded messages, errno mapping. */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "hf_error.h"

int main(void)
{
    CHECK_SUITE("error");
    hf_error e;
    hf_error_clear(&e);
    CHECK(e.code == NULL, "cleared code");
    CHECK_INT(hf_error_set(&e, "EBUSY", "port %s held", "/dev/ttyUSB2"), -1);
    CHECK_STR(e.code, "EBUSY");
    CHECK_STR(e.msg, "port /dev/ttyUSB2 held");

    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    hf_error_set(&e, "EIO", "%s", big);
    CHECK_INT(strlen(e.msg), HF_ERROR_MSG_MAX - 1);

    CHECK_STR(hf_error_code_from_errno(ENOENT), "ENOENT");
    CHECK_STR(hf_error_code_from_errno(EIO), "EPORTLOST");
    CHECK_STR(hf_error_code_from_errno(ENODEV), "EPORTLOST");
    CHECK_STR(hf_error_code_from_errno(EBUSY), "EBUSY");

    char small[4];
    CHECK_INT(hf_strlcpy(small, sizeof small, "abcdef"), -1);
    CHECK_STR(small, "abc");
    CHECK_INT(hf_strlcpy(small, sizeof small, "ab"), 0);
    CHECK_STR(small, "ab");
    return CHECK_END();
}
