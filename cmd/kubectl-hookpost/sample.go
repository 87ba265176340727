package main

import "sort"

// sampleData is built-in event data for `test` and `publish` when --data is not given: product doc 000's event
// catalogue, with the doc's own examples where it gives one, and doc 002's collection operations.
var sampleData = map[string]string{
	"user.registered":  `{"user_id":42,"name":"John Doe","email":"john.doe@example.com","role":"MEMBER","invited_by":17}`,
	"user.updated":     `{"user_id":42,"name":"John Doe","email":"john.doe@example.com","role":"ADMIN","changed_fields":["role"]}`,
	"user.removed":     `{"user_id":42,"email":"john.doe@example.com","removed_by":17}`,
	"order.created":    `{"order_id":1001,"user_id":42,"total":299.99,"items_count":3,"status":"pending"}`,
	"order.updated":    `{"order_id":1001,"user_id":42,"total":299.99,"items_count":3,"status":"processing","previous_status":"pending"}`,
	"order.completed":  `{"order_id":1001,"user_id":42,"total":299.99,"items_count":3,"status":"completed"}`,
	"order.cancelled":  `{"order_id":1001,"user_id":42,"total":299.99,"items_count":3,"status":"cancelled","reason":"customer_request"}`,
	"product.created":  `{"product_id":55,"name":"Wireless Headphones","price":249.99,"stock":50}`,
	"product.updated":  `{"product_id":55,"name":"Wireless Headphones","price":199.99,"stock":45,"changed_fields":["price","stock"]}`,
	"product.deleted":  `{"product_id":55,"name":"Wireless Headphones"}`,
	"category.created": `{"category_id":7,"name":"Audio","parent_id":null}`,
	"category.updated": `{"category_id":7,"name":"Audio & Headphones","parent_id":null,"changed_fields":["name"]}`,
	"category.deleted": `{"category_id":7,"name":"Audio & Headphones"}`,
	"insert":           `{"_id":"64fd1234abcd5678ef901234","title":"Hello World","body":"Content here..."}`,
	"update":           `{"_id":"64fd1234abcd5678ef901234","title":"Hello World","body":"Updated content..."}`,
	"delete":           `{"_id":"64fd1234abcd5678ef901234"}`,
}

// sampleTypes lists the event types with built-in data, for help texts and errors.
func sampleTypes() []string {
	types := make([]string, 0, len(sampleData))
	for t := range sampleData {
		types = append(types, t)
	}
	sort.Strings(types)
	return types
}
