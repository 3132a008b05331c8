/*
 * pam_driver: runs a PAM service's auth stack the way PostgreSQL does (pam_start, a conversation
 * that answers PAM_PROMPT_ECHO_OFF with the password, pam_authenticate, pam_end), without
 * PostgreSQL. Used to test pam_pgtoken.so under ASan/UBSan/LSan and to time it.
 *
 *   pam_driver SERVICE USER [COUNT] < password
 *
 * The password is stdin minus one trailing newline. COUNT > 1 repeats the whole login COUNT times
 * and prints the rate on stdout. Exit status: 0 every login accepted, 1 refused, 2 usage or
 * system error. The password is never printed.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <security/pam_appl.h>

#define PASSWORD_MAX (256 * 1024)       /* larger than the module's cap, to test the cap */

/* Answers every echo-off prompt with the password, as PostgreSQL's pam_passwd_conv_proc does. */
static int conv(int num_msg, const struct pam_message **msg, struct pam_response **resp,
                void *appdata)
{
    struct pam_response *r;

    if (num_msg <= 0 || num_msg > PAM_MAX_NUM_MSG)
        return PAM_CONV_ERR;
    r = calloc((size_t)num_msg, sizeof(*r));
    if (!r)
        return PAM_BUF_ERR;
    for (int i = 0; i < num_msg; i++) {
        switch (msg[i]->msg_style) {
        case PAM_PROMPT_ECHO_OFF:
            r[i].resp = strdup(appdata);
            if (!r[i].resp)
                goto fail;
            break;
        case PAM_ERROR_MSG:
        case PAM_TEXT_INFO:
            fprintf(stderr, "pam_driver: message: %s\n", msg[i]->msg);
            break;
        default:
            goto fail;
        }
    }
    *resp = r;
    return PAM_SUCCESS;
fail:
    for (int i = 0; i < num_msg; i++)
        free(r[i].resp);
    free(r);
    return PAM_CONV_ERR;
}

/* One login. Returns the pam_authenticate result, or the pam_start error. */
static int login_once(const char *service, const char *user, char *password)
{
    struct pam_conv pc = { conv, password };
    pam_handle_t *pamh = NULL;
    int rc = pam_start(service, user, &pc, &pamh);

    if (rc != PAM_SUCCESS)
        return rc;
    rc = pam_authenticate(pamh, PAM_SILENT);
    pam_end(pamh, rc);
    return rc;
}

int main(int argc, char **argv)
{
    char *password;
    size_t len;
    long count = 1;
    int rc = PAM_SUCCESS;
    struct timespec t0, t1;

    if (argc < 3 || argc > 4 || (argc == 4 && (count = strtol(argv[3], NULL, 10)) < 1)) {
        fprintf(stderr, "usage: pam_driver SERVICE USER [COUNT] < password\n");
        return 2;
    }
    password = malloc(PASSWORD_MAX + 1);
    if (!password)
        return 2;
    len = fread(password, 1, PASSWORD_MAX, stdin);
    if (len > 0 && password[len - 1] == '\n')
        len--;
    password[len] = '\0';

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < count && rc == PAM_SUCCESS; i++)
        rc = login_once(argv[1], argv[2], password);
    clock_gettime(CLOCK_MONOTONIC, &t1);

    if (count > 1 && rc == PAM_SUCCESS) {
        double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

        printf("%ld logins in %.3f s: %.0f logins/s\n", count, s, (double)count / s);
    }
    free(password);
    if (rc == PAM_SUCCESS)
        return 0;
    fprintf(stderr, "pam_driver: %s\n", pam_strerror(NULL, rc));
    return rc == PAM_AUTH_ERR || rc == PAM_USER_UNKNOWN || rc == PAM_SERVICE_ERR ||
                   rc == PAM_CONV_ERR
               ? 1
               : 2;
}
