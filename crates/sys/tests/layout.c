/* Prints every size, field offset and constant of include/darksidesync.h
 * as "name<TAB>value" lines; tests/layout.rs compares them with the Rust
 * definitions of darksidesync-sys. */
#include <stdio.h>
#include <string.h>
#include "darksidesync.h"

#define SIZE(t) printf("sizeof %s\t%zu\n", #t, sizeof(t))
#define OFF(t, f) printf("offsetof %s.%s\t%zu\n", #t, #f, offsetof(t, f))
#define CODE(c) printf("%s\t%d\n", #c, (int)(c))
#define TEXT(s) printf("%s\t%s\n", #s, s)

int main(void) {
    TEXT(DSS_REGISTRY_NAME);
    TEXT(DSS_VERSION_KEY);
    TEXT(DSS_VERSION);
    TEXT(DSS_API_1v0_KEY);
    TEXT(DSS_API_2v0_KEY);

    SIZE(DSS_api_1v0_t);
    OFF(DSS_api_1v0_t, version);
    OFF(DSS_api_1v0_t, reg);
    OFF(DSS_api_1v0_t, getutilid);
    OFF(DSS_api_1v0_t, deliver);
    OFF(DSS_api_1v0_t, unreg);
    CODE(DSS_SUCCESS);
    CODE(DSS_ERR_UDP_SEND_FAILED);
    CODE(DSS_ERR_INVALID_UTILID);
    CODE(DSS_ERR_NOT_STARTED);
    CODE(DSS_ERR_NO_CANCEL_PROVIDED);
    CODE(DSS_ERR_OUT_OF_MEMORY);
    CODE(DSS_ERR_NO_DECODE_PROVIDED);
    CODE(DSS_ERR_NO_GLOBALS);
    CODE(DSS_ERR_UNKNOWN_LIB);
    CODE(DSS_ERR_ALREADY_REGISTERED);
    CODE(DSS_ERR_WOULD_DEADLOCK);

    SIZE(dss2_handle);
    SIZE(dss_api_2v0_t);
    OFF(dss_api_2v0_t, size);
    OFF(dss_api_2v0_t, version);
    OFF(dss_api_2v0_t, reg);
    OFF(dss_api_2v0_t, getid);
    OFF(dss_api_2v0_t, unreg);
    OFF(dss_api_2v0_t, post);
    OFF(dss_api_2v0_t, call);
    OFF(dss_api_2v0_t, hold);
    OFF(dss_api_2v0_t, release);
    OFF(dss_api_2v0_t, stats);
    OFF(dss_api_2v0_t, status);
    OFF(dss_api_2v0_t, strerror);
    OFF(dss_api_2v0_t, waits);
    OFF(dss_api_2v0_t, post_inline);
    OFF(dss_api_2v0_t, setfinalizer);
    SIZE(dss2_stats_t);
    OFF(dss2_stats_t, size);
    OFF(dss2_stats_t, posted);
    OFF(dss2_stats_t, ran);
    OFF(dss2_stats_t, cancelled);
    OFF(dss2_stats_t, refused);
    OFF(dss2_stats_t, replies);
    OFF(dss2_stats_t, errors);
    OFF(dss2_stats_t, timeouts);
    OFF(dss2_stats_t, keep_alive);
    SIZE(dss2_waits_t);
    OFF(dss2_waits_t, size);
    OFF(dss2_waits_t, enabled);
    OFF(dss2_waits_t, count);
    OFF(dss2_waits_t, p50_ns);
    OFF(dss2_waits_t, p99_ns);
    OFF(dss2_waits_t, max_ns);
    OFF(dss2_waits_t, total_ns);
    CODE(DSS2_OK);
    CODE(DSS2_EINVAL);
    CODE(DSS2_ESTALE);
    CODE(DSS2_ECLOSED);
    CODE(DSS2_ENOTSTARTED);
    CODE(DSS2_EALREADY);
    CODE(DSS2_EUNKNOWNLIB);
    CODE(DSS2_ENOMEM);
    CODE(DSS2_EFULL);
    CODE(DSS2_ETIMEDOUT);
    CODE(DSS2_EWOULDDEADLOCK);
    CODE(DSS2_ECANCELLED);
    CODE(DSS2_EHANDLER);
    CODE(DSS2_EINTERNAL);
    CODE(DSS2_NOWAIT);
    CODE(DSS2_WAITS_STATE);
    CODE(DSS2_RAN);
    CODE(DSS2_INLINE_MAX);
    return 0;
}
