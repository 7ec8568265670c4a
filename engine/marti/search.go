package marti

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// searchResult is one file as TAK Server's Metadata serialises it: scalar
// fields are strings. ATAK requires UID, Name, Hash, PrimaryKey and
// SubmissionDateTime (MissionPackageQueryResult.java).
type searchResult struct {
	UID                string   `json:"UID"`
	Name               string   `json:"Name"`
	Hash               string   `json:"Hash"`
	PrimaryKey         string   `json:"PrimaryKey"`
	SubmissionDateTime string   `json:"SubmissionDateTime"`
	SubmissionUser     string   `json:"SubmissionUser"`
	CreatorUID         string   `json:"CreatorUid"`
	Keywords           []string `json:"Keywords"`
	MIMEType           string   `json:"MIMEType"`
	Size               string   `json:"Size"`
	Tool               string   `json:"Tool"`
}

type searchResults struct {
	ResultCount int            `json:"resultCount"`
	Results     []searchResult `json:"results"`
}

func searchResultOf(m FileMeta) searchResult {
	kw := m.Keywords
	if kw == nil {
		kw = []string{}
	}
	return searchResult{
		UID: m.UID, Name: m.Name, Hash: m.Hash, PrimaryKey: strconv.FormatInt(m.PrimaryKey, 10),
		SubmissionDateTime: m.Submitted.UTC().Format("2006-01-02T15:04:05.000Z"), SubmissionUser: m.Submitter,
		CreatorUID: m.CreatorUID, Keywords: kw, MIMEType: m.MIMEType, Size: strconv.FormatInt(m.Size, 10), Tool: m.Tool,
	}
}

func jsonBytes(v any) ([]byte, error) { return json.Marshal(v) }

// GET /Marti/sync/search?keywords=&tool=&uid=&name=&mimetype=: the files
// the caller may see that match every given filter (keywords: any of them).
func (s *Server) serveSearch(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	q := r.URL.Query()
	keywords := splitKeywords(strings.Join(params(q, "keywords"), ","))
	tool, uid, name, mt := param(q, "tool"), param(q, "uid"), param(q, "name"), param(q, "mimetype")
	all, err := s.files.All(r.Context())
	if err != nil {
		s.internal(w, r, err)
		return
	}
	out := searchResults{Results: []searchResult{}}
	for _, m := range all {
		if !c.visible(m) || (tool != "" && m.Tool != tool) || (uid != "" && m.UID != uid) ||
			(name != "" && m.Name != name) || (mt != "" && m.MIMEType != mt) {
			continue
		}
		if len(keywords) > 0 && !slices.ContainsFunc(keywords, func(k string) bool { return slices.Contains(m.Keywords, k) }) {
			continue
		}
		out.Results = append(out.Results, searchResultOf(m))
	}
	out.ResultCount = len(out.Results)
	body, err := json.Marshal(out)
	if err != nil {
		s.internal(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/json")
	_, _ = w.Write(body)
}
