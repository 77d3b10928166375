// Draws the report's charts from the JSON embedded in the page: no library,
// no network, so the file stays whole when it is mailed or archived.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("volley-data").textContent);
  var colors = ["#2f6fdf", "#e0892f", "#d23c3c", "#3a9d5d", "#8a5cc7", "#6b6b6b"];
  var t0 = data.t.length ? data.t[0] : 0;

  var span = data.t.length ? data.t[data.t.length - 1] - t0 : 0;

  function clock(ms) {
    if (span < 20000) return ((ms - t0) / 1000).toFixed(1) + "s";
    var s = Math.round((ms - t0) / 1000), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    var ss = s % 60, pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return h > 0 ? h + ":" + pad(m) + ":" + pad(ss) : m + ":" + pad(ss);
  }

  function number(v) {
    if (v === null || v === undefined) return "–";
    var a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toFixed(2) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
    if (a >= 100) return v.toFixed(0);
    if (a >= 1) return v.toFixed(2);
    return v.toPrecision(3);
  }

  function draw(box, chart) {
    var canvas = box.querySelector("canvas"), readout = box.querySelector(".readout");
    var ratio = window.devicePixelRatio || 1;
    var width = canvas.clientWidth || 900, height = canvas.clientHeight || 220;
    canvas.width = width * ratio;
    canvas.height = height * ratio;
    var g = canvas.getContext("2d");
    g.scale(ratio, ratio);
    var left = 64, right = 12, top = 10, bottom = 26;
    var w = width - left - right, h = height - top - bottom;
    var xs = data.t, x0 = xs[0], x1 = xs[xs.length - 1];
    if (x1 === x0) x1 = x0 + 1000;
    var ymax = 0;
    chart.series.forEach(function (s) {
      s.values.forEach(function (v) { if (v !== null && v > ymax) ymax = v; });
    });
    ymax = ymax > 0 ? ymax * 1.1 : 1;
    var X = function (t) { return left + ((t - x0) / (x1 - x0)) * w; };
    var Y = function (v) { return top + h - (v / ymax) * h; };

    g.fillStyle = "#ffffff";
    g.fillRect(0, 0, width, height);
    g.font = "11px sans-serif";
    g.strokeStyle = "#e3e3e3";
    g.fillStyle = "#555555";
    g.lineWidth = 1;
    for (var i = 0; i <= 4; i++) {
      var v = (ymax / 4) * i, y = Y(v);
      g.beginPath(); g.moveTo(left, y); g.lineTo(left + w, y); g.stroke();
      g.textAlign = "right"; g.textBaseline = "middle";
      g.fillText(number(v), left - 6, y);
    }
    g.textAlign = "center"; g.textBaseline = "top";
    for (var k = 0; k <= 5; k++) {
      var t = x0 + ((x1 - x0) / 5) * k;
      g.fillText(clock(t), X(t), top + h + 6);
    }
    g.strokeStyle = "#999999";
    g.strokeRect(left, top, w, h);

    chart.series.forEach(function (s, n) {
      g.strokeStyle = colors[n % colors.length];
      g.lineWidth = 1.6;
      g.beginPath();
      var open = false;
      s.values.forEach(function (v, j) {
        if (v === null) { open = false; return; }
        if (open) g.lineTo(X(xs[j]), Y(v)); else g.moveTo(X(xs[j]), Y(v));
        open = true;
      });
      g.stroke();
      // A lone point between gaps still shows.
      s.values.forEach(function (v, j) {
        var lone = v !== null && (j === 0 || s.values[j - 1] === null) && (j === s.values.length - 1 || s.values[j + 1] === null);
        if (lone) { g.fillStyle = colors[n % colors.length]; g.fillRect(X(xs[j]) - 1.5, Y(v) - 1.5, 3, 3); }
      });
    });

    canvas.addEventListener("mousemove", function (ev) {
      var r = canvas.getBoundingClientRect(), t = x0 + ((ev.clientX - r.left - left) / w) * (x1 - x0);
      var best = 0;
      for (var j = 1; j < xs.length; j++) if (Math.abs(xs[j] - t) < Math.abs(xs[best] - t)) best = j;
      readout.textContent = clock(xs[best]) + "  " + chart.series.map(function (s) {
        return s.name + " " + number(s.values[best]) + (chart.unit ? " " + chart.unit : "");
      }).join("   ");
    });
    return true;
  }

  var drawn = 0;
  document.querySelectorAll(".chart").forEach(function (box) {
    var chart = data.charts[Number(box.getAttribute("data-chart"))];
    if (chart && draw(box, chart)) drawn++;
  });
  document.body.setAttribute("data-charts-drawn", String(drawn));
})();
