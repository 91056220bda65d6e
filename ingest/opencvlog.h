#ifndef LOOKOUT_OPENCVLOG_H
#define LOOKOUT_OPENCVLOG_H
#ifdef __cplusplus
extern "C" {
#endif
void lookout_opencv_log_errors_only(void);
#ifdef __cplusplus
}
#endif
#endif
