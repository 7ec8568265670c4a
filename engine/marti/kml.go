package marti

import (
	"archive/zip"
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// GET /Marti/ExportMissionKML?uid=&startTime=&endTime=&format=kmz|kml:
// ATAK's Track History query. The answer is a KMZ (a zip holding doc.kml)
// with one gx:Track of the uid's position reports in the range, or 404
// when there are none the caller may see.
func (s *Server) serveExportKML(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	q := r.URL.Query()
	uid := param(q, "uid")
	if uid == "" {
		httpError(w, http.StatusBadRequest, "uid is required")
		return
	}
	var from, to time.Time
	var err error
	if v := param(q, "startTime"); v != "" {
		if from, err = parseISO(v); err != nil {
			httpError(w, http.StatusBadRequest, "startTime: "+err.Error())
			return
		}
	}
	if v := param(q, "endTime"); v != "" {
		if to, err = parseISO(v); err != nil {
			httpError(w, http.StatusBadRequest, "endTime: "+err.Error())
			return
		}
	}
	points, err := s.hist.Events(r.Context(), Query{UID: uid, From: from, To: to, SAOnly: true, Groups: c.Hears})
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if len(points) == 0 {
		httpError(w, http.StatusNotFound, "no track for "+uid+" in that range")
		return
	}
	doc := trackKML(uid, points)
	if strings.EqualFold(param(q, "format"), "kml") {
		w.Header().Set("Content-Type", "application/vnd.google-earth.kml+xml")
		_, _ = w.Write(doc)
		return
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	f, err := zw.Create("doc.kml")
	if err == nil {
		_, err = f.Write(doc)
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/vnd.google-earth.kmz")
	w.Header().Set("Content-Disposition", `attachment; filename="track.kmz"`)
	_, _ = w.Write(buf.Bytes())
}

// trackKML writes one Placemark with a gx:Track: a <when> and a
// <gx:coord> (lon lat alt) per report, oldest first.
func trackKML(uid string, recs []Record) []byte {
	var b bytes.Buffer
	name := uid
	if recs[len(recs)-1].Callsign != "" {
		name = recs[len(recs)-1].Callsign
	}
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<kml xmlns="http://www.opengis.net/kml/2.2" xmlns:gx="http://www.google.com/kml/ext/2.2"><Document><name>`)
	_ = xml.EscapeText(&b, []byte(name))
	b.WriteString(`</name><Placemark><name>`)
	_ = xml.EscapeText(&b, []byte(name))
	b.WriteString(`</name><ExtendedData><Data name="uid"><value>`)
	_ = xml.EscapeText(&b, []byte(uid))
	b.WriteString(`</value></Data></ExtendedData><gx:Track><altitudeMode>absolute</altitudeMode>`)
	for _, r := range recs {
		fmt.Fprintf(&b, "<when>%s</when>", r.At.UTC().Format("2006-01-02T15:04:05.000Z"))
	}
	for _, r := range recs {
		hae := r.HAE
		if hae >= 9999999 {
			hae = 0
		}
		b.WriteString("<gx:coord>")
		b.WriteString(strconv.FormatFloat(r.Lon, 'f', -1, 64) + " " + strconv.FormatFloat(r.Lat, 'f', -1, 64) + " " + strconv.FormatFloat(hae, 'f', -1, 64))
		b.WriteString("</gx:coord>")
	}
	b.WriteString(`</gx:Track></Placemark></Document></kml>`)
	return b.Bytes()
}
