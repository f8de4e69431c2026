// A page's image-heavy figures, drawn from its data (atlas/render/figures.py): the JSON
// in <script id="figures"> and each element marked data-figure="<name>" to fill. It
// makes the elements the server once wrote (same classes, sizes, alt text, links), so
// the stylesheet and the browser tests see one page either way; it runs before
// atlas.js, which centres the circuit diagram it draws.
(function () {
  "use strict";
  var source = document.getElementById("figures");
  if (!source) return;
  var data = JSON.parse(source.textContent);
  var SVG = "http://www.w3.org/2000/svg";
  var WHAT = { fv: "Feature visualization", w: "Weights", ex: "Top dataset example" };  // figures.py's WHAT

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    set(node, attrs);
    (children || []).forEach(function (child) {
      if (child !== null && child !== undefined) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }
  function svg(tag, attrs, children) {
    var node = document.createElementNS(SVG, tag);
    set(node, attrs);
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }
  function set(node, attrs) {
    Object.keys(attrs || {}).forEach(function (key) {
      if (attrs[key] !== null && attrs[key] !== undefined && attrs[key] !== false) node.setAttribute(key, attrs[key]);
    });
  }
  function fixed(value, digits) { return Number(value).toFixed(digits); }
  function signed(value, digits) { return (value >= 0 ? "+" : "") + fixed(value, digits); }

  // A dataset image: its name and label (data/images.js) and thumbnail (urls.dataset_image's folders).
  function image(id) {
    var found = window.ATLAS_IMAGES[id], start = Math.floor(id / data.per_folder) * data.per_folder;
    return { name: found[0], label: found[1],
             src: data.data + start + "-" + (start + data.per_folder - 1) + "/img-" + id + ".webp" };
  }
  // A picture (figures.py's formats) as { src } for a file, { src, tile, tiles } for a sprite's tile.
  function resolve(p) {
    if (typeof p[0] === "number") return { src: data.sprites[p[0]][0], tile: p[1], tiles: data.sprites[p[0]][1] };
    return p.length === 1 ? { src: p[0] } : { src: p[0], tile: p[1], tiles: p[2] };
  }
  // A unit's picture: 1 is its thumbnail beside its page (figures.py's THUMB).
  function ofUnit(p, index, href) {
    return p === 1 ? [href.replace(/[^\/]*$/, "") + data.thumb.replace("{}", index)] : p;
  }
  // An edge's unit tile, its paths made relative to the page (they are to its layer's folder).
  function inLayer(e, t) {
    if (!t) return t;
    var prefix = data.layers[e[0]][1], p = t[2] && t[2] !== 1 ? [prefix + t[2][0]].concat(t[2].slice(1)) : t[2];
    return [t[0], prefix + t[1], p].concat(t.slice(3));
  }
  // A picture at size px: a file, or a sprite's tile through a window its size.
  function picture(p, size, alt, className, title) {
    var found = resolve(p);
    if (found.tiles === undefined) {
      return el("img", { "class": className, src: found.src, width: size, height: size, loading: "lazy", alt: alt, title: title });
    }
    var inner = el("img", { src: found.src, width: size, height: size * found.tiles, loading: "lazy", alt: alt,
                            style: "margin-top: -" + size * found.tile + "px" });
    return el("span", { "class": "window" + (className ? " " + className : ""), title: title,
                        style: "width: " + size + "px; height: " + size + "px" }, [inner]);
  }
  function crop(example, size, alt, title) {
    return picture(example[2] || [image(example[0]).src], size, alt, null, title);
  }

  // Weight maps: one pixel per tap, white at zero, red excites, blue inhibits, full
  // color at |w| = scale (atlas/render/weightmaps.py draws the same).
  function taps(map) {
    return map[2].map(function (t) { return t / 1000 * map[0]; });
  }
  function weightPng(map, scale) {
    var width = map[1], values = taps(map), height = values.length / width;
    var canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    var context = canvas.getContext("2d"), pixels = context.createImageData(width, height);
    values.forEach(function (w, i) {
      var strength = scale ? Math.max(-255, Math.min(255, Math.trunc(w * 255 / scale))) : 0;
      var fade = 255 - Math.abs(strength);
      pixels.data.set(strength > 0 ? [255, fade, fade, 255] : [fade, fade, 255, 255], 4 * i);
    });
    context.putImageData(pixels, 0, 0);
    return canvas.toDataURL("image/png");
  }
  function mapSize(map) { return map[2].length / map[1] + "×" + map[1]; }  // rows × columns
  function legend(scale, title) {
    var label = (title ? title.charAt(0).toUpperCase() + title.slice(1) + ": w" : "W") + "eight color scale from " +
      fixed(-scale, 3) + " (blue, inhibits) through 0 (white) to " + signed(scale, 3) + " (red, excites)";
    return el("div", { "class": "weight-legend", role: "img", "aria-label": label }, [
      title ? el("span", { "class": "legend-title" }, [title]) : null,
      el("span", {}, [fixed(-scale, 3)]), el("span", { "class": "bar" }), el("span", {}, [signed(scale, 3)])]);
  }

  // A unit as a tile: its picture (or a blank), linked to its page (_macros.html's unit_tile);
  // on a layer's grid also its top example, shown when the grid is switched to examples.
  function unitTile(t, example) {
    var failed = t[4], dead = t[5], notes = [], alt = "Top dataset example of unit " + t[0];
    if (dead) notes.push("dead unit");
    if (failed) notes.push("feature visualization failed");
    var label = el("span", { "class": "tile-label" }, [String(t[0])]);
    if (failed || dead) {
      label.appendChild(document.createTextNode(" "));
      label.appendChild(el("abbr", { "class": "failed-label", title: failed ? "feature visualization failed" : "never active on the dataset" },
                           [failed ? "failed" : "dead"]));
    }
    return el("a", { "class": "tile" + (failed ? " failed" : "") + (dead ? " dead" : ""), href: t[1],
                     title: notes.length ? notes.join("; ") : null }, [
      t[2] ? picture(ofUnit(t[2], t[0], t[1]), 64, WHAT[t[3]] + " of unit " + t[0], "main")
           : el("span", { "class": "placeholder main", "aria-hidden": "true" }),
      example ? picture(example, 64, alt, "alt") : null,
      label]);
  }

  var draw = {
    grid: function (node) {
      var fragment = document.createDocumentFragment();
      data.grid.forEach(function (t) { fragment.appendChild(unitTile(t, t[6])); });
      var observe = deferImages(fragment);
      node.appendChild(fragment);
      observe();
    },
    members: function (node) {  // a family's (figures.py's family_figures)
      data.members.forEach(function (t) {
        var caption = t[7], parts = [];
        if (caption[0] !== null) parts.push(caption[0] + "°");
        var figcaption = el("figcaption", {}, [parts.join("") + " ",
          el("span", { "class": "confidence", title: "confidence" }, [fixed(caption[1], 2)])]);
        if (caption[2]) {
          figcaption.appendChild(document.createTextNode(" "));
          figcaption.appendChild(el("span", { "class": "meta", title: "borderline: its runner-up scores " + fixed(caption[2][1], 2) },
                                    ["or " + caption[2][0]]));
        }
        node.appendChild(el("figure", { "class": "member" }, [unitTile(t, t[6]), figcaption]));
      });
    },
    evidence: function (node) {  // a family's table, member by member
      data.evidence.forEach(function (row) {
        var examples = el("td"), stimuli = el("td");
        row[3].forEach(function (ex) { examples.appendChild(picture(ex[1], 48, "Dataset example " + image(ex[0]).name)); });
        row[4].forEach(function (s) {
          stimuli.appendChild(el("img", { src: s[1], width: 48, height: 48, loading: "lazy", alt: "Preferred " + s[0] + " stimulus",
                                          title: s[0] + ": " + s[2] }));
        });
        node.appendChild(el("tr", {}, [
          el("td", {}, [el("a", { href: row[1] }, [String(row[0])])]),
          el("td", {}, [row[2] ? el("img", { src: row[2], width: 64, height: 64, loading: "lazy", alt: "Feature visualization of unit " + row[0] }) : null]),
          examples, stimuli]));
      });
    },
    examples: function (node) { exampleRow(node, data.examples, "among the strongest"); },
    negative: function (node) { exampleRow(node, data.negative, "among the most negative"); },
    quantiles: function (node) {
      data.quantiles.forEach(function (group) {
        var cell = el("td");
        group[1].forEach(function (ex) {
          var found = image(ex[0]);
          cell.appendChild(el("span", { "class": "example-image small", title: found.name + ": " + fixed(ex[1], 2) }, [
            el("img", { src: found.src, width: 48, height: 48, loading: "lazy", alt: "Dataset image " + found.name }),
            el("span", { "class": "marker", style: "left: " + fixed(ex[2] * 100, 1) + "%; top: " + fixed(ex[3] * 100, 1) + "%" })]));
        });
        node.appendChild(el("tr", {}, [el("th", { scope: "row" }, [fixed(group[0][0], 2) + " – " + fixed(group[0][1], 2)]), cell]));
      });
    },
    meanings: function (node) {
      data.meanings[Number(node.dataset.index)].forEach(function (ex) {
        var name = image(ex[0]).name;
        node.appendChild(crop(ex, 64, "Crop of " + name, name + " · " + fixed(ex[1], 2)));
      });
    },
    stimuli: function (node) {
      data.stimuli.forEach(function (s) {
        var kind = s[0].replace(/_/g, "-");
        node.appendChild(el("figure", { "class": "example" }, [
          el("img", { "class": "pixelated", src: s[1], width: 64, height: 64, loading: "lazy", alt: "Preferred " + s[0] + " stimulus" }),
          el("figcaption", {}, [kind + " · " + fixed(s[2], 2)])]));
      });
    },
    takeover: function (node) {
      data.takeover.forEach(function (owner) {
        var angles = owner[3], span = angles[0] + "°" + (angles.length > 1 ? "–" + angles[angles.length - 1] + "°" : "");
        node.appendChild(el("a", { "class": "tile", href: owner[1], title: "unit " + owner[0] + ": strongest at " + angles.join("°, ") + "°" }, [
          owner[2] ? el("img", { src: ofUnit(owner[2], owner[0], owner[1])[0], width: 64, height: 64, loading: "lazy",
                                 alt: "Feature visualization of unit " + owner[0] })
                   : el("span", { "class": "placeholder" }),
          el("span", { "class": "tile-label" }, [owner[0] + " · " + span])]));
      });
    },
    row: function (node) {
      var edges = data.rows[node.dataset.row].map(function (i) { return data.edges[i]; });
      var scale = Math.max.apply(null, edges.map(function (e) { return e[4][0]; }).concat([0]));
      node.appendChild(legend(scale));
      var strip = el("div", { "class": "strip edges" });
      edges.forEach(function (e) {
        var t = inLayer(e, e[1]);
        strip.appendChild(el("figure", { "class": "edge" }, [
          unitTile(t),
          el("img", { "class": "weight-map pixelated", src: weightPng(e[4], scale), width: 96, height: 96, alt: "weight map, " + mapSize(e[4]) }),
          el("figcaption", {}, [el("code", {}, [data.layers[e[0]][0]]), " " + t[0],
                                e[2] ? " " : null, e[2] ? el("span", { "class": "symbol-badge small" }, [e[2]]) : null,
                                el("br"), signed(e[3], 3)])]));
      });
      node.appendChild(strip);
    },
    diagram: function (node) {
      var d = data.diagram;
      var root = svg("svg", { "class": "circuit-diagram", viewBox: "0 0 " + d.width + " " + d.height, width: d.width,
                              height: d.height, "aria-labelledby": "circuit-caption" });
      d.edges.forEach(function (drawn) {
        var e = data.edges[drawn[0]], t = inLayer(e, e[1]), x = drawn[2], sign = drawn[1], ends = drawn[3];
        var ys = d.ys[drawn[5]], middle = (ends[1] + ends[3]) / 2;  // a vertical S-curve (diagrams.py's Drawn.path)
        var link = svg("a", { "class": "edge " + sign, href: t[1],
                              "aria-label": "Unit " + t[0] + " of " + data.layers[e[0]][0] + ": strongest weight " + signed(e[3], 3) + " (" + sign + ")" }, [
          svg("path", { d: "M" + ends[0] + "," + ends[1] + " C" + ends[0] + "," + middle + " " + ends[2] + "," + middle +
                           " " + ends[2] + "," + ends[3], "stroke-width": drawn[4] }),
          diagramPicture(inLayer(e, drawn[6]) || t, x + (d.map - d.picture) / 2, ys[0], d.picture)]);
        var label = svg("text", { x: x + d.map / 2, y: ys[1] });
        label.textContent = t[0] + (e[2] ? " " + e[2] : "") + " · " + signed(e[3], 3);
        link.appendChild(label);
        var map = svg("image", { "class": "pixelated", href: weightPng(e[4], d.scales[drawn[5]][1]), x: x, y: ys[2], width: d.map,
                                 height: d.map, preserveAspectRatio: "none" });
        map.appendChild(title("Weight map, " + mapSize(e[4]) + " taps"));
        link.appendChild(map);
        link.appendChild(svg("rect", { "class": "frame", x: x, y: ys[2], width: d.map, height: d.map }));
        root.appendChild(link);
      });
      var c = d.centre, unit = d.unit;
      var centre = svg("a", { "class": "centre", href: unit[1], "aria-label": "Unit " + unit[0] }, [
        diagramPicture(unit, c[0] - c[2] / 2, c[1], c[2])]);
      var text = svg("text", { x: c[0], y: c[1] + c[2] + 13 });
      text.textContent = "unit " + unit[0] + (d.family ? " · " + d.family : "");
      centre.appendChild(text);
      root.appendChild(centre);
      node.appendChild(root);
    },
    legends: function (node) {
      data.diagram.scales.forEach(function (s) { node.appendChild(legend(s[1], s[0])); });
    }
  };

  // A grid of a thousand tiles: each image is requested as it nears the screen (the
  // browser's own lazy loading reaches two screens ahead, a megabyte of thumbnails);
  // an image hidden by the grid's switch, when it is shown.
  function deferImages(fragment) {
    if (!("IntersectionObserver" in window)) return function () {};
    var observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (!entry.isIntersecting) return;
        var image = entry.target.tagName === "IMG" ? entry.target : entry.target.querySelector("img");
        image.src = image.dataset.src;
        observer.unobserve(entry.target);
      });
    }, { rootMargin: "200px 0px" });
    var images = Array.prototype.slice.call(fragment.querySelectorAll("img"));
    images.forEach(function (image) {
      image.dataset.src = image.getAttribute("src");
      image.removeAttribute("src");
    });
    return function () {  // once the images are in the page
      images.forEach(function (image) { observer.observe(image.closest(".window") || image); });
    };
  }
  function exampleRow(node, examples, what) {
    examples.forEach(function (ex) {
      var found = image(ex[0]);
      node.appendChild(el("figure", { "class": "example" }, [
        crop(ex, 96, "Crop of dataset image " + found.name + ", " + what, found.name),
        el("figcaption", {}, [fixed(ex[1], 2) + (found.label ? " · " + found.label : "")])]));
    });
  }
  function title(text) {
    var node = svg("title");
    node.textContent = text;
    return node;
  }
  // A unit's picture in the diagram (figures.py's pictured): never a failed feature visualization.
  function diagramPicture(t, x, y, size) {
    if (!t[2]) return svg("rect", { "class": "placeholder", x: x, y: y, width: size, height: size });
    var p = resolve(ofUnit(t[2], t[0], t[1])), named = title(WHAT[t[3]] + " of unit " + t[0]);
    if (p.tiles === undefined) {
      return svg("image", { href: p.src, x: x, y: y, width: size, height: size, preserveAspectRatio: "xMidYMid slice" }, [named]);
    }
    return svg("svg", { x: x, y: y, width: size, height: size, viewBox: "0 " + 64 * p.tile + " 64 64" }, [
      svg("image", { href: p.src, width: 64, height: 64 * p.tiles }, [named])]);
  }

  document.querySelectorAll("[data-figure]").forEach(function (node) { draw[node.dataset.figure](node); });
})();
