// cv::VideoCapture::grab and retrieve, which gocv v0.31 does not expose with
// their results (its Grab returns nothing, and there is no Retrieve): grab
// decodes a frame without converting it to BGR; retrieve converts the frame
// grabbed last.
#include <opencv2/videoio.hpp>

#include "grab.h"

int lookout_capture_grab(void *cap) {
    return static_cast<cv::VideoCapture *>(cap)->grab() ? 1 : 0;
}

int lookout_capture_retrieve(void *cap, void *mat) {
    return static_cast<cv::VideoCapture *>(cap)->retrieve(*static_cast<cv::Mat *>(mat)) ? 1 : 0;
}
