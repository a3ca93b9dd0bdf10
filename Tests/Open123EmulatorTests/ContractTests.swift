import Foundation
import Testing
@testable import Open123Emulator

@Suite("123 Open emulator: conventions and auth")
struct AuthContractTests {
    @Test func envelopePlatformAndBearer() async throws {
        try await withEmulator { h in
            let ok = try await h.call(.GET, "/api/v1/user/info")
            #expect(ok.status == 200 && ok.code == 0 && ok.message == "ok")
            #expect((ok.json["x-traceID"] as? String)?.isEmpty == false)
            let noPlatform = try await h.call(.GET, "/api/v1/user/info", platform: false)
            #expect(noPlatform.status == 200 && noPlatform.code != 0 && noPlatform.json["data"] is NSNull)
            let noToken = try await h.call(.GET, "/api/v1/user/info", token: "")
            #expect(noToken.status == 200 && noToken.code == 401 && noToken.message == "access Token Invalid")
            let bad = try await h.call(.GET, "/api/v1/user/info", token: "nope")
            #expect(bad.code == 401)
        }
    }

    @Test func accessTokenJSONFormAndBadCredentials() async throws {
        try await withEmulator { h in
            let r = try await h.call(.POST, "/api/v1/access_token", ["clientID": "emulator-client", "clientSecret": "emulator-secret"], token: "")
            let expiredAt = try #require(r.data["expiredAt"] as? String)
            #expect(expiredAt.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00$"#, options: .regularExpression) != nil)
            let form = try await h.raw(.POST, "/api/v1/access_token", headers: [("Platform", "open_platform"), ("Content-Type", "application/x-www-form-urlencoded")],
                                       body: Data("clientID=emulator-client&clientSecret=emulator-secret".utf8))
            #expect(form.code == 0 && (form.data["accessToken"] as? String)?.isEmpty == false)
            let wrong = try await h.call(.POST, "/api/v1/access_token", ["clientID": "emulator-client", "clientSecret": "x"], token: "")
            #expect(wrong.code != 0 && wrong.json["data"] is NSNull)
            // Keys are matched case-insensitively.
            let lower = try await h.call(.POST, "/api/v1/access_token", ["clientid": "emulator-client", "CLIENTSECRET": "emulator-secret"], token: "")
            #expect(lower.code == 0)
        }
    }

    @Test func threeLiveTokensEvictTheOldest() async throws {
        try await withEmulator { h in
            let first = h.token
            var later: [String] = []
            for _ in 0..<3 { later.append(try await h.newToken()) }
            let evicted = try await h.call(.GET, "/api/v1/user/info", token: first)
            #expect(evicted.code == 401 && evicted.message == "tokens number has exceeded the limit")
            for t in later { #expect(try await h.call(.GET, "/api/v1/user/info", token: t).code == 0) }
        }
    }

    @Test func tokensExpire() async throws {
        try await withEmulator({ $0.tokenTTL = 1 }) { h in
            #expect(try await h.call(.GET, "/api/v1/user/info").code == 0)
            try await Task.sleep(for: .milliseconds(1200))
            let r = try await h.call(.GET, "/api/v1/user/info")
            #expect(r.code == 401 && r.message == "token is expired")
        }
        try await withEmulator { h in
            await h.emu.expireAllTokens()
            #expect(try await h.call(.GET, "/api/v1/user/info").code == 401)
            let knob = try await h.raw(.POST, "/__emulator/tokens/revoke")
            #expect(knob.code == 0)
        }
    }

    @Test func userInfoShape() async throws {
        try await withEmulator({ $0.uid = 42; $0.vip = true }) { h in
            let d = try await h.call(.GET, "/api/v1/user/info").data
            #expect(d.int("uid") == 42 && d["vip"] as? Bool == true)
            expectTypes(d, ["uid": "int", "nickname": "string", "headImage": "string", "passport": "string", "mail": "string",
                            "spaceUsed": "int", "spacePermanent": "int", "spaceTemp": "int", "spaceTempExpr": "int", "vip": "bool",
                            "directTraffic": "int", "isHideUID": "bool", "httpsCount": "int", "vipInfo": "array", "developerInfo": "object"])
            #expect((d["vipInfo"] as? [[String: Any]])?.first?["vipLevel"] != nil)
        }
    }

    @Test func rateLimitsKnobAndCallCounts() async throws {
        try await withEmulator({ $0.rateLimits = .official }) { h in
            // The v1 list allows 0.2 QPS on the free tier: the second call at once is refused.
            #expect(try await h.call(.GET, "/api/v1/file/list?parentFileId=0&limit=10").code == 0)
            let second = try await h.call(.GET, "/api/v1/file/list?parentFileId=0&limit=10")
            #expect(second.code == 429 && second.message == "请求太频繁")
            await h.emu.failNextRequests(2)
            #expect(try await h.call(.GET, "/api/v1/user/info").code == 429)
            #expect(try await h.call(.GET, "/api/v1/user/info").code == 429)
            #expect(try await h.call(.GET, "/api/v1/user/info").code == 0)
            let counts = await h.emu.callCounts()
            #expect(counts["/api/v1/user/info"] == 3 && counts["/api/v1/access_token"] == 1)
        }
    }
}

@Suite("123 Open emulator: files")
struct FileContractTests {
    @Test func pagingOver250ItemsIncludesTrashed() async throws {
        try await withEmulator { h in
            let parent = try await h.mkdir("many")
            var ids: [Int64] = []
            for i in 0..<251 { ids.append(try await h.mkdir(String(format: "d%03d", i), in: parent)) }
            _ = try await h.call(.POST, "/api/v1/file/trash", ["fileIDs": [ids[5]]])
            var seen: [Int64] = []
            var cursor: Int64? = nil
            var pages = 0
            repeat {
                let r = try await h.list(parent, limit: 100, after: cursor)
                #expect(r.code == 0)
                let items = try #require(r.data["fileList"] as? [[String: Any]])
                seen += items.compactMap { $0.int("fileId") }
                cursor = r.data.int("lastFileId")
                pages += 1
                #expect(jsonType(r.data["lastFileId"]) == "int")
                if let first = items.first {
                    expectTypes(first, ["fileId": "int", "filename": "string", "type": "int", "size": "int", "etag": "string",
                                        "status": "int", "parentFileId": "int", "category": "int", "trashed": "int", "punishFlag": "int",
                                        "s3KeyFlag": "string", "storageNode": "string", "createAt": "string", "updateAt": "string"])
                    #expect((first["createAt"] as? String)?.range(of: #"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"#, options: .regularExpression) != nil)
                }
                if cursor != -1 { #expect(cursor == items.last?.int("fileId")) }
            } while cursor != -1 && pages < 10
            #expect(pages == 3 && seen == ids)
            let all = try await h.list(parent, limit: 100, after: ids[4])
            let trashed = (all.data["fileList"] as? [[String: Any]])?.first
            #expect(trashed?.int("fileId") == ids[5] && trashed?.int("trashed") == 1)
            #expect(try await h.list(parent, limit: 101).code != 0)
            let search = try await h.call(.GET, "/api/v2/file/list?parentFileId=0&limit=100&searchData=d250&searchMode=1")
            #expect((search.data["fileList"] as? [[String: Any]])?.compactMap { $0["filename"] as? String } == ["d250"])
        }
    }

    @Test func mkdirAndNameRules() async throws {
        try await withEmulator { h in
            _ = try await h.mkdir("a")
            let clash = try await h.call(.POST, "/upload/v1/file/mkdir", ["name": "a", "parentID": "0"])
            #expect(clash.code == 1 && clash.message == "该目录下已经有同名文件夹,无法进行创建")
            for bad in ["x/y", "a:b", "q?", "   ", String(repeating: "n", count: 256), "<>"] {
                #expect(try await h.call(.POST, "/upload/v1/file/mkdir", ["name": bad, "parentID": 0]).code != 0, "\(bad)")
            }
        }
    }

    @Test func renameMoveTrashDeleteRecoverCopy() async throws {
        try await withEmulator { h in
            let a = try await h.mkdir("a"), b = try await h.mkdir("b")
            let f = try await h.upload("f.txt", Data("hello".utf8), parent: a)
            #expect(try await h.call(.PUT, "/api/v1/file/name", ["fileId": f, "fileName": "g.txt"]).code == 0)
            let batch = try await h.call(.POST, "/api/v1/file/rename", ["renameList": ["\(f)|h.txt", "999|x"]])
            #expect((batch.data["successList"] as? [Any])?.count == 1 && (batch.data["failList"] as? [Any])?.count == 1)
            let detail = try await h.call(.GET, "/api/v1/file/detail?fileID=\(f)")
            #expect(detail.data["filename"] as? String == "h.txt" && detail.data.int("fileID") == f && detail.data.int("parentFileID") == a)
            #expect(detail.data["updateAt"] == nil)
            expectTypes(detail.data, ["fileID": "int", "filename": "string", "type": "int", "size": "int", "etag": "string",
                                      "status": "int", "parentFileID": "int", "createAt": "string", "trashed": "int"])
            let folder = try await h.call(.GET, "/api/v1/file/detail?fileID=\(a)")
            #expect(folder.data.int("size") == 5)  // a folder's accumulated size
            #expect(try await h.call(.POST, "/api/v1/file/move", ["fileIDs": [f], "toParentFileID": b]).code == 0)
            #expect(try await h.call(.POST, "/api/v1/file/move", ["fileIDs": [a], "toParentFileID": a]).code != 0)
            #expect(try await h.call(.POST, "/api/v1/file/delete", ["fileIDs": [f]]).code != 0)  // not trashed yet
            #expect(try await h.call(.POST, "/api/v1/file/trash", ["fileIDs": [f]]).code == 0)
            let rec = try await h.call(.POST, "/api/v1/file/recover", ["fileIDs": [f]])
            #expect((rec.data["abnormalFileIDs"] as? [Any])?.isEmpty == true)
            let copy = try await h.call(.POST, "/api/v1/file/copy", ["fileId": f, "targetDirId": a])
            let copied = try #require(copy.data.int("targetFileId"))
            let infos = try await h.call(.POST, "/api/v1/file/infos", ["fileIds": [f, copied]])
            #expect((infos.data["fileList"] as? [[String: Any]])?.count == 2)
            let task = try await h.call(.POST, "/api/v1/file/async/copy", ["fileIds": [f], "targetDirId": 0])
            let tid = try #require(task.data.int("taskId"))
            #expect(try await h.call(.GET, "/api/v1/file/async/copy/process?taskId=\(tid)").data.int("status") == 2)
            #expect(try await h.call(.POST, "/api/v1/file/trash", ["fileIDs": [f]]).code == 0)
            #expect(try await h.call(.POST, "/api/v1/file/delete", ["fileIDs": [f]]).code == 0)
            #expect(try await h.call(.GET, "/api/v1/file/detail?fileID=\(f)").code == 5066)
        }
    }
}

@Suite("123 Open emulator: uploads and downloads")
struct UploadContractTests {
    @Test func sliceUploadWithPendingCompletionAndInstantReuse() async throws {
        try await withEmulator { h in
            let data = Data((0..<5000).map { UInt8($0 % 251) })
            let etag = md5Hex(data)
            let bad = try await h.call(.POST, "/upload/v2/file/create", ["parentFileID": 0, "filename": "x.bin", "etag": etag.uppercased(), "size": data.count])
            #expect(bad.message == "Etag格式异常")
            let c = try await h.call(.POST, "/upload/v2/file/create", ["parentFileId": "0", "filename": "x.bin", "etag": etag, "size": data.count, "duplicate": 2])
            #expect(c.data["reuse"] as? Bool == false && c.data.int("sliceSize") == 1024)
            expectTypes(c.data, ["fileID": "int", "reuse": "bool", "preuploadID": "string", "sliceSize": "int", "servers": "array"])
            #expect((c.data["servers"] as? [String]) == [h.base])
            let pre = try #require(c.data["preuploadID"] as? String)
            // Missing slices.
            #expect(try await h.call(.POST, "/upload/v2/file/upload_complete", ["preuploadID": pre]).code != 0)
            // A wrong slice MD5 and a wrong slice size are refused.
            #expect(try await h.slice(pre, 1, data.prefix(1024), md5: String(repeating: "0", count: 32)).code != 0)
            #expect(try await h.slice(pre, 1, data.prefix(100)).code != 0)
            for n in 1...5 {
                let part = data.subdata(in: (n - 1) * 1024..<min(n * 1024, data.count))
                #expect(try await h.slice(pre, n, part).code == 0)
            }
            #expect(try await h.slice(pre, 2, data.subdata(in: 1024..<2048)).code == 0)  // re-sending is fine
            await h.emu.setCompletePending(polls: 0)
            let done = try await h.call(.POST, "/upload/v2/file/upload_complete", ["preuploadID": pre])
            #expect(done.data["completed"] as? Bool == true)
            expectTypes(done.data, ["completed": "bool", "fileID": "int"])
            let fid = try #require(done.data.int("fileID"))
            #expect(try await h.call(.POST, "/upload/v2/file/upload_complete", ["preuploadID": pre]).data.int("fileID") == fid)
            // The same content again: instant upload.
            let again = try await h.call(.POST, "/upload/v2/file/create", ["parentFileID": 0, "filename": "y.bin", "etag": etag, "size": data.count])
            #expect(again.data["reuse"] as? Bool == true && again.data.int("fileID") != 0 && again.data["preuploadID"] as? String == "")
            expectTypes(again.data, ["fileID": "int", "reuse": "bool", "servers": "null"])
            // Download the first file and check the bytes.
            let info = try await h.call(.GET, "/api/v1/file/download_info?fileId=\(fid)")
            let url = try #require(info.data["downloadUrl"] as? String)
            #expect(try await h.raw(.GET, url).body == data)
        }
    }

    @Test func slicesInAnyOrderAndPartOrderMakeTheRightFile() async throws {
        try await withEmulator { h in
            let data = Data((0..<4500).map { UInt8(($0 * 7) % 253) })
            let c = try await h.call(.POST, "/upload/v2/file/create", ["parentFileID": 0, "filename": "order.bin", "etag": md5Hex(data), "size": data.count])
            let pre = try #require(c.data["preuploadID"] as? String)
            func part(_ n: Int) -> Data { data.subdata(in: (n - 1) * 1024..<min(n * 1024, data.count)) }
            // Last slice first; slice 3 with its file part before the fields (spooled, then copied in).
            #expect(try await h.slice(pre, 5, part(5)).code == 0)
            #expect(try await h.slice(pre, 3, part(3), fileFirst: true).code == 0)
            #expect(try await h.slice(pre, 1, part(1)).code == 0)
            // A bad re-send of a recorded slice is refused and does not damage it.
            #expect(try await h.slice(pre, 1, Data(repeating: 0, count: 1024), md5: md5Hex(part(1))).code != 0)
            #expect(try await h.slice(pre, 4, part(4)).code == 0)
            #expect(try await h.slice(pre, 2, part(2)).code == 0)
            let done = try await h.call(.POST, "/upload/v2/file/upload_complete", ["preuploadID": pre])
            #expect(done.data["completed"] as? Bool == true)
            let fid = try #require(done.data.int("fileID"))
            let info = try await h.call(.GET, "/api/v1/file/download_info?fileId=\(fid)")
            #expect(try await h.raw(.GET, try #require(info.data["downloadUrl"] as? String)).body == data)
        }
    }

    @Test func pendingPollsAndMismatch() async throws {
        try await withEmulator { h in
            await h.emu.setCompletePending(polls: 3)
            let data = Data("pending content".utf8)
            let c = try await h.call(.POST, "/upload/v2/file/create", ["parentFileID": 0, "filename": "p.txt", "etag": md5Hex(data), "size": data.count])
            let pre = c.data["preuploadID"] as? String ?? ""
            _ = try await h.slice(pre, 1, data)
            var codes: [String] = []
            for _ in 0..<4 {
                let r = try await h.call(.POST, "/upload/v2/file/upload_complete", ["preuploadID": pre])
                codes.append(r.code == 20103 ? "20103" : (r.data["completed"] as? Bool == true ? "done" : "false"))
            }
            #expect(codes.contains("20103") && codes.contains("false") && codes.last == "done")
            // Slices that do not add up to the declared MD5.
            await h.emu.setCompletePending(polls: 0)
            let other = Data("abcdefgh".utf8)
            let c2 = try await h.call(.POST, "/upload/v2/file/create", ["parentFileID": 0, "filename": "m.txt", "etag": md5Hex(Data("12345678".utf8)), "size": 8])
            let pre2 = c2.data["preuploadID"] as? String ?? ""
            #expect(try await h.slice(pre2, 1, other).code == 0)
            #expect(try await h.call(.POST, "/upload/v2/file/upload_complete", ["preuploadID": pre2]).message == "文件上传失败")
            // The content exists now: instant upload.
            let c3 = try await h.call(.POST, "/upload/v2/file/create", ["parentFileID": 0, "filename": "s.txt", "etag": md5Hex(data), "size": data.count, "duplicate": 1])
            #expect(c3.data["reuse"] as? Bool == true)
            // Injected slice failures (over the HTTP knob): the next slice fails, a retry succeeds.
            #expect(try await h.raw(.POST, "/__emulator/upload/fail-slices", headers: [("Content-Type", "application/json")], body: Data(#"{"count":1}"#.utf8)).code == 0)
            let fresh = Data("fresh bytes".utf8)
            let c4 = try await h.call(.POST, "/upload/v2/file/create", ["parentFileID": 0, "filename": "t.txt", "etag": md5Hex(fresh), "size": fresh.count])
            let pre4 = c4.data["preuploadID"] as? String ?? ""
            #expect(try await h.slice(pre4, 1, fresh).code != 0)
            #expect(try await h.slice(pre4, 1, fresh).code == 0)
            #expect(try await h.call(.POST, "/upload/v2/file/upload_complete", ["preuploadID": pre4]).data["completed"] as? Bool == true)
        }
    }

    @Test func duplicatesSingleCreateAndSHA1() async throws {
        try await withEmulator { h in
            let one = Data("one".utf8), two = Data("two!".utf8)
            _ = try await h.upload("d.txt", one)
            let clash = try await h.call(.POST, "/upload/v2/file/create", ["parentFileID": 0, "filename": "d.txt", "etag": md5Hex(two), "size": 4])
            #expect(clash.code != 0)
            _ = try await h.upload("d.txt", two, duplicate: 1)
            _ = try await h.upload("d.txt", two, duplicate: 2)
            let names = (try await h.list(0).data["fileList"] as? [[String: Any]])?.compactMap { $0["filename"] as? String }.sorted()
            #expect(names == ["d(1).txt", "d.txt"])
            let (body, ct) = h.multipart([("parentFileID", "0"), ("filename", "single.bin"), ("etag", md5Hex(two)), ("size", "4"), ("duplicate", "2")],
                                         file: ("file", "single.bin", two))
            let single = try await h.raw(.POST, "/upload/v2/file/single/create", headers: [("Platform", "open_platform"), ("Authorization", "Bearer " + h.token), ("Content-Type", ct)], body: body)
            #expect(single.code == 0 && single.data["completed"] as? Bool == true && single.data.int("fileID") != 0)
            let sha = try await h.call(.POST, "/upload/v2/file/sha1_reuse", ["parentFileID": 0, "filename": "byhash.txt", "sha1": sha1Hex(two), "size": 4])
            #expect(sha.data["reuse"] as? Bool == true)
            let miss = try await h.call(.POST, "/upload/v2/file/sha1_reuse", ["parentFileID": 0, "filename": "nope.txt", "sha1": sha1Hex(Data("zz".utf8)), "size": 2])
            #expect(miss.data["reuse"] as? Bool == false)
            #expect((try await h.call(.GET, "/upload/v2/file/domain").json["data"] as? [String]) == [h.base])
        }
    }

    @Test func legacyV1Flow() async throws {
        try await withEmulator { h in
            let data = Data((0..<1500).map { UInt8($0 % 7) })
            let c = try await h.call(.POST, "/upload/v1/file/create", ["parentFileID": 0, "filename": "v1.bin", "etag": md5Hex(data), "size": data.count])
            let pre = try #require(c.data["preuploadID"] as? String)
            #expect(c.data["servers"] == nil)
            for n in 1...2 {
                let u = try await h.call(.POST, "/upload/v1/file/get_upload_url", ["preuploadID": pre, "sliceNo": n])
                let url = try #require(u.data["presignedURL"] as? String)
                let part = data.subdata(in: (n - 1) * 1024..<min(n * 1024, data.count))
                #expect(try await h.raw(.PUT, url, headers: [("Authorization", "Bearer x")], body: part).status == 403)
                #expect(try await h.raw(.PUT, url, body: part).status == 200)
            }
            let parts = try await h.call(.POST, "/upload/v1/file/list_upload_parts", ["preuploadID": pre])
            #expect((parts.data["parts"] as? [[String: Any]])?.first?["partNumber"] as? String == "1")
            let done = try await h.call(.POST, "/upload/v1/file/upload_complete", ["preuploadID": pre])
            #expect(done.data["completed"] as? Bool == true && done.data["async"] != nil)
        }
    }

    @Test func downloadsRangeAndErrors() async throws {
        try await withEmulator { h in
            let data = Data((0..<3000).map { UInt8($0 % 256) })
            let fid = try await h.upload("r.bin", data)
            let url = try #require(try await h.call(.GET, "/api/v1/file/download_info?fileId=\(fid)").data["downloadUrl"] as? String)
            let part = try await h.raw(.GET, url, headers: [("Range", "bytes=10-19")])
            #expect(part.status == 206 && part.body == data.subdata(in: 10..<20) && part.headers.first(name: "Content-Range") == "bytes 10-19/3000")
            #expect(try await h.raw(.GET, url, headers: [("Range", "bytes=3000-")]).status == 416)
            let head = try await h.raw(.HEAD, url)
            #expect(head.status == 200 && head.headers.first(name: "Content-Length") == "3000" && head.body.isEmpty)
            #expect(try await h.call(.GET, "/api/v1/file/download_info?fileId=123").code == 5066)
            // The drop knob cuts the next download short.
            await h.emu.dropNextDownload()
            let cut = try? await h.raw(.GET, url)
            #expect(cut == nil || cut!.body.count < data.count)
            #expect(try await h.raw(.GET, url).body == data)
            await h.emu.setDownloadQuota(daily: 100)
            #expect(try await h.call(.GET, "/api/v1/file/download_info?fileId=\(fid)").code == 5113)
        }
    }

    @Test func directLinksAndSigning() async throws {
        try await withEmulator({ $0.uid = 77 }) { h in
            let space = try await h.mkdir("pub")
            let sub = try await h.mkdir("sub", in: space)
            let fid = try await h.upload("文 件.txt", Data("direct".utf8), parent: sub)
            #expect(try await h.call(.GET, "/api/v1/direct-link/url?fileID=\(fid)").code != 0)  // not enabled yet
            #expect(try await h.call(.POST, "/api/v1/direct-link/enable", ["fileID": sub]).code != 0)  // not under the root
            #expect(try await h.call(.POST, "/api/v1/direct-link/enable", ["fileID": space]).data["filename"] as? String == "pub")
            let url = try #require(try await h.call(.GET, "/api/v1/direct-link/url?fileID=\(fid)").data["url"] as? String)
            #expect(url.hasPrefix(h.base + "/77/pub/sub/"))
            #expect(try await h.raw(.GET, url).body == Data("direct".utf8))
            // With a private key, only a valid, unexpired auth_key passes.
            await h.emu.setPrivateKey("secret-key")
            #expect(try await h.raw(.GET, url).status == 403)
            let path = "/77/pub/sub/文 件.txt"
            func signed(_ ts: Int64) -> String {
                let rand = "abc123"
                let md5 = md5Hex(Data("\(path)-\(ts)-\(rand)-77-secret-key".utf8))
                return url + "?auth_key=\(ts)-\(rand)-77-\(md5)"
            }
            let future = Int64(Date().timeIntervalSince1970) + 600
            #expect(try await h.raw(.GET, signed(future)).body == Data("direct".utf8))
            #expect(try await h.raw(.GET, signed(Int64(Date().timeIntervalSince1970) - 10)).status == 403)
        }
    }

    @Test func stateSurvivesARestartWithDataDir() async throws {
        let dir = NSTemporaryDirectory() + "emu-data-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var fid: Int64 = 0
        try await withEmulator({ $0.dataDir = dir }) { h in
            fid = try await h.upload("keep.txt", Data("persisted".utf8))
        }
        try await withEmulator({ $0.dataDir = dir }) { h in
            let url = try #require(try await h.call(.GET, "/api/v1/file/download_info?fileId=\(fid)").data["downloadUrl"] as? String)
            #expect(try await h.raw(.GET, url).body == Data("persisted".utf8))
        }
    }
}
