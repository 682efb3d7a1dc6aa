/* The #test_score value as SageMaker prints it: the repr of its Python 2 container's float64. */
#include "knn_test.h"

#include "train/job_report.h"

#include <math.h>
#include <stdio.h>

/*
 * Expected strings from /usr/bin/python3 with numpy's legacy (1.13) repr, the float repr of the
 * Python 2 containers SageMaker's documented lines come from:
 *   python3 -c "import numpy as np; np.set_printoptions(legacy='1.13'); print(repr(np.float64(X)))"
 */
int test_score_repr_like_python(void)
{
    static const struct {
        double value;
        const char *repr;
    } cases[] = {
        {1.0, "1.0"},
        {0.561, "0.56100000000000005"},
        {148.0 / 150.0, "0.98666666666666669"},
        {1.0 / 75.0, "0.013333333333333334"},
        {0.0, "0.0"},
        {-0.0, "-0.0"},
        {1e16, "10000000000000000.0"},
        {1e17, "1e+17"},
        {1e-5, "1.0000000000000001e-05"},
        {123456.789, "123456.789"},
        {2.5e-300, "2.5e-300"},
        {1e300, "1.0000000000000001e+300"},
        {0.5, "0.5"},
        {-3.0, "-3.0"},
        {0.1, "0.10000000000000001"},
        {1.0 / 3.0, "0.33333333333333331"},
        {4.9406564584124654e-324, "4.9406564584124654e-324"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
        {99.0 / 100.0, "0.98999999999999999"},
        {239.0 / 240.0, "0.99583333333333335"},
        {12345678.0, "12345678.0"},
    };
    char buf[32];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ASSERT_STR_EQ(cases[i].repr, knn_score_repr(buf, sizeof(buf), cases[i].value));
    ASSERT_STR_EQ("nan", knn_score_repr(buf, sizeof(buf), NAN));
    ASSERT_STR_EQ("inf", knn_score_repr(buf, sizeof(buf), INFINITY));
    ASSERT_STR_EQ("-inf", knn_score_repr(buf, sizeof(buf), -INFINITY));
    /* A buffer too small for ".0" is truncated, never overrun. */
    char small[4];
    knn_score_repr(small, sizeof(small), 100.0);
    ASSERT_STR_EQ("100", small);
    return 0;
}
