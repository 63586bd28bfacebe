import Testing

@testable import Metrics

@Suite("Prometheus text exposition")
struct PrometheusTextTests {
    @Test("label values escape backslash, double quote and newline")
    func escapesLabelValues() {
        var page = PrometheusText()
        page.gauge("g", help: "h", [(labels: [("path", "a\\b\"c\nd")], value: 1)])

        #expect(page.text.contains(#"g{path="a\\b\"c\nd"} 1"# + "\n"))
        #expect(!page.text.contains("c\nd"))
    }

    @Test("help text escapes backslash and newline")
    func escapesHelp() {
        var page = PrometheusText()
        page.counter("c_total", help: "two\nlines \\ here", [(labels: [], value: 3)])

        #expect(
            page.text == "# HELP c_total two\\nlines \\\\ here\n# TYPE c_total counter\nc_total 3\n"
        )
    }

    @Test("HELP and TYPE appear once per family and its samples stay together")
    func helpAndTypeOnce() {
        var page = PrometheusText()
        page.counter("a_total", help: "A.", [(labels: [("k", "1")], value: 1)])
        page.gauge("b", help: "B.", [(labels: [], value: 2)])
        page.counter("a_total", help: "A.", [(labels: [("k", "2")], value: 5)])
        let lines = page.text.split(separator: "\n")

        #expect(lines.filter { $0 == "# HELP a_total A." }.count == 1)
        #expect(lines.filter { $0 == "# TYPE a_total counter" }.count == 1)
        #expect(
            lines == [
                "# HELP a_total A.", "# TYPE a_total counter", #"a_total{k="1"} 1"#,
                #"a_total{k="2"} 5"#, "# HELP b B.", "# TYPE b gauge", "b 2",
            ])
    }

    @Test("histogram buckets are cumulative and end with +Inf, _sum and _count")
    func histogramIsCumulative() {
        var page = PrometheusText()
        page.histogram(
            "d_seconds", help: "D.", upperBounds: [0.1, 1, 2.5],
            [(labels: [("m", "x")], bucketCounts: [3, 0, 2, 4], sum: 12.75)])

        #expect(
            page.text == """
                # HELP d_seconds D.
                # TYPE d_seconds histogram
                d_seconds_bucket{m="x",le="0.1"} 3
                d_seconds_bucket{m="x",le="1"} 3
                d_seconds_bucket{m="x",le="2.5"} 5
                d_seconds_bucket{m="x",le="+Inf"} 9
                d_seconds_sum{m="x"} 12.75
                d_seconds_count{m="x"} 9

                """)
    }

    @Test(
        "values print as Prometheus parsers read them",
        arguments: [
            (1.0, "1"), (0.0, "0"), (-2.0, "-2"), (0.25, "0.25"), (0.0001, "0.0001"),
            (Double.infinity, "+Inf"), (-Double.infinity, "-Inf"), (Double.nan, "NaN"),
            (1e20, "1e+20"),
        ])
    func formatsValues(value: Double, expected: String) {
        #expect(PrometheusText.format(value) == expected)
    }

    @Test("metric and label names are checked against the format's grammar")
    func validatesNames() {
        #expect(PrometheusText.isValidMetricName("vmssd_rpc:rate5m"))
        #expect(!PrometheusText.isValidMetricName("9lives"))
        #expect(!PrometheusText.isValidMetricName("with-dash"))
        #expect(!PrometheusText.isValidMetricName(""))
        #expect(PrometheusText.isValidLabelName("method"))
        #expect(!PrometheusText.isValidLabelName("a:b"))
        #expect(!PrometheusText.isValidLabelName("__reserved"))
    }
}
