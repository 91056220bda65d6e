#ifndef LOOKOUT_GRAB_H
#define LOOKOUT_GRAB_H
#ifdef __cplusplus
extern "C" {
#endif
int lookout_capture_grab(void *cap);
int lookout_capture_retrieve(void *cap, void *mat);
#ifdef __cplusplus
}
#endif
#endif
