// The report's axes use round ticks (integers for counts) and its time lines show the injected faults.
#include "chaos/report.h"

#include <gtest/gtest.h>

#include <cmath>
#include <regex>

namespace paypath::chaos {
namespace {

TEST(NiceAxis, StepsAreOneTwoOrFiveTimesAPowerOfTen) {
  for (double max : {0.3, 1.0, 7.0, 13.0, 42.5, 99.0, 101.0, 777.0, 1234.0, 56789.0}) {
    for (bool integer : {false, true}) {
      Axis a = NiceAxis(max, integer);
      double mant = a.step / std::pow(10.0, std::floor(std::log10(a.step)));
      EXPECT_TRUE(std::fabs(mant - 1) < 1e-9 || std::fabs(mant - 2) < 1e-9 || std::fabs(mant - 5) < 1e-9)
          << max << " -> step " << a.step;
      EXPECT_GE(a.max, max);
      EXPECT_LE(a.max / a.step, 5 + 1e-9) << max;
      EXPECT_NEAR(a.max / a.step, std::round(a.max / a.step), 1e-9);
      if (integer) {
        EXPECT_GE(a.step, 1);
      }
    }
  }
  EXPECT_EQ(NiceAxis(7, true).step, 2);
  EXPECT_EQ(NiceAxis(7, true).max, 8);
  EXPECT_EQ(NiceAxis(1234, false).step, 500);
  EXPECT_EQ(NiceAxis(1234, false).max, 1500);
  EXPECT_EQ(NiceAxis(3, true).step, 1);  // a count never gets a 0.5 tick
  EXPECT_EQ(NiceAxis(0.3, false).step, 0.1);
  EXPECT_EQ(NiceAxis(0, true).max, 1);
}

// Every number printed along an axis is round (two significant digits at most, the ticks being multiples
// of a 1-2-5 step): no "2.33" or "583" for a maximum of 2,333.
TEST(Report, TickLabelsAreRound) {
  std::string svg = SvgLines({{"backlog", {{0, 0}, {9.7, 2333}, {23.3, 17}}}}, "t", "s", {}, true);
  std::regex label("<text x='[0-9.]+' y='[0-9.]+' text-anchor='(end|middle)'>([0-9.]+)</text>");
  int n = 0;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), label); it != std::sregex_iterator(); ++it) {
    double v = std::stod((*it)[2]);
    double p = v == 0 ? 1 : std::pow(10.0, std::floor(std::log10(v)));
    double mant10 = v / p * 10;
    EXPECT_NEAR(mant10, std::round(mant10), 1e-6) << "tick " << (*it)[2];
    n++;
  }
  EXPECT_GE(n, 6);
  // Attempts are integers: the bars are labelled 1..max, nothing fractional.
  std::string bars = SvgBars({{1, 900}, {2, 80}, {3, 7}}, "attempts", "attempts");
  EXPECT_NE(bars.find(">3</text>"), std::string::npos);
  EXPECT_EQ(bars.find(".5</text>"), std::string::npos);
}

TEST(Report, FaultsAreMarkedOnTheTimeLines) {
  ReportData d;
  d.title = "t";
  d.timeline = {{0, 1, 0, 0}, {5, 10, 1, 20}, {10, 0, 0, 40}};
  d.faults = {{2, 4.5, "ledger database read-only"}, {6, 0, "COMMIT answer cut"}};
  std::string html = RenderHtml(d);
  // Three time lines, each with a band and a line.
  size_t bands = 0, lines = 0;
  for (size_t p = 0; (p = html.find("<rect class='fault'", p)) != std::string::npos; ++p) bands++;
  for (size_t p = 0; (p = html.find("<line class='fault'", p)) != std::string::npos; ++p) lines++;
  EXPECT_EQ(bands, 3u);
  EXPECT_EQ(lines, 3u);
  EXPECT_NE(html.find("ledger database read-only"), std::string::npos);
  EXPECT_NE(html.find("<td>2</td><td>4.5</td><td>ledger database read-only</td>"), std::string::npos) << html;
}

}  // namespace
}  // namespace paypath::chaos
