// OpenCV's log level is read from OPENCV_LOG_LEVEL once, when the library
// loads (a static initializer), before any Go code runs; only this call
// changes it afterwards. gocv v0.31 does not expose it.
#include <opencv2/core/utils/logger.hpp>

#include "opencvlog.h"

void lookout_opencv_log_errors_only(void) {
    cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_ERROR);
}
